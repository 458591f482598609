"""The offline demo corpus: WMT14 layout, determinism, noise, grammar and lexicon."""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

import pytest

from aiayn.config import DemoConfig
from aiayn.data import demo
from aiayn.data.demo import (
    ACC,
    DAT,
    GEN,
    LEXICON,
    NOISE_KINDS,
    NOM,
    NP,
    PP,
    Clause,
    clause_en,
    main_de,
    np_de,
    np_en,
    pp_de,
    sub_de,
)
from aiayn.data.demo.profiles import CHUNK
from aiayn.data.sgml import read_sgml
from aiayn.errors import AiaynError, ConfigError, DataError

ALL = ["europarl-v7", "commoncrawl", "news-commentary-v9"]
CFG = DemoConfig(seed=7, train_pairs=3000, dev_pairs=150, test_pairs=250, noise=0.05)
LAYOUT = {
    "training/europarl-v7.de-en.de",
    "training/europarl-v7.de-en.en",
    "commoncrawl.de-en.de",
    "commoncrawl.de-en.en",
    "training/news-commentary-v9.de-en.de",
    "training/news-commentary-v9.de-en.en",
    "dev/newstest2013.en",
    "dev/newstest2013.de",
    "test-full/newstest2014-deen-src.en.sgm",
    "test-full/newstest2014-deen-ref.de.sgm",
}


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _read(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n") and "\r" not in text
    return text.split("\n")[:-1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("demo")
    return root, demo.generate_demo(CFG, root, ALL)


def _train(root: Path, corpus_name: str) -> list[tuple[str, str]]:
    base = root / demo.TRAIN_FILES[corpus_name]
    en, de = _read(Path(f"{base}.en")), _read(Path(f"{base}.de"))
    assert len(en) == len(de)
    return list(zip(en, de, strict=True))


def _devtest(root: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    dev_en, dev_de = _read(root / "dev/newstest2013.en"), _read(root / "dev/newstest2013.de")
    dev = list(zip(dev_en, dev_de, strict=True))
    test = list(zip(read_sgml(root / demo.TEST_SRC), read_sgml(root / demo.TEST_REF), strict=True))
    return dev, test


# ----------------------------------------------------------------------------- layout


def test_layout_is_the_official_wmt14_one_and_line_counts_match(corpus):
    root, summary = corpus
    assert _files(root) == LAYOUT
    for rel, n in summary["files"].items():
        if rel.endswith(".sgm"):
            assert len(read_sgml(root / rel)) == n == CFG.test_pairs
        else:
            assert len(_read(root / rel)) == n
    for name in ALL:
        lines = summary["corpora"][name]["lines"]
        assert lines == len(_train(root, name))
        assert lines == summary["corpora"][name]["clean"] + sum(
            summary["corpora"][name]["noise"].values()
        )
    assert sum(c["clean"] for c in summary["corpora"].values()) == CFG.train_pairs
    assert summary["dev"]["segments"] == CFG.dev_pairs == len(_devtest(root)[0])
    assert sum(summary["noise"].values()) == round(CFG.noise * CFG.train_pairs)


def test_only_the_requested_corpora_are_written(tmp_path):
    cfg = DemoConfig(seed=1, train_pairs=200, dev_pairs=20, test_pairs=30, noise=0.1)
    summary = demo.generate_demo(cfg, tmp_path, ["commoncrawl"])
    assert _files(tmp_path) == {
        f for f in LAYOUT if not f.startswith(("training/europarl", "training/news"))
    }
    assert list(summary["corpora"]) == ["commoncrawl"]
    assert summary["corpora"]["commoncrawl"]["clean"] == 200


def test_bad_corpus_names_and_unwritable_staging_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="europarl-v8"):
        demo.generate_demo(CFG, tmp_path / "a", ["europarl-v8"])
    with pytest.raises(ConfigError, match="distinct"):
        demo.generate_demo(CFG, tmp_path / "b", ["commoncrawl", "commoncrawl"])
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(AiaynError, match="file"):
        demo.generate_demo(CFG, blocker / "staging", ALL)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# ----------------------------------------------------------------------------- determinism


def test_same_seed_is_byte_identical_and_another_seed_differs(corpus, tmp_path):
    root, summary = corpus
    again = tmp_path / "again"
    assert demo.generate_demo(CFG, again, ALL) == summary
    for rel in LAYOUT:
        assert (root / rel).read_bytes() == (again / rel).read_bytes(), rel
    other = tmp_path / "other"
    cfg = DemoConfig(seed=8, train_pairs=3000, dev_pairs=150, test_pairs=250, noise=0.05)
    demo.generate_demo(cfg, other, ALL)
    for rel in LAYOUT:
        assert (root / rel).read_bytes() != (other / rel).read_bytes(), rel


def test_translation_is_a_function_of_the_source():
    # Whatever random choices built a sentence, the same English gets the same German:
    # collect repeats across seeds, of whole sentences and of noun phrases in each case.
    seen: dict[tuple, str] = {}
    repeats = 0

    def check(key: tuple, german: str) -> None:
        nonlocal repeats
        if key in seen:
            repeats += 1
            assert seen[key] == german, (key, seen[key], german)
        seen[key] = german

    for seed in (1, 2):
        for en, de in demo.generate_pairs(8000, seed, "demo"):
            check(("sentence", en), de)
    assert repeats >= 5
    repeats = 0
    for seed in (1, 2, 3):
        gen = demo.SentenceGenerator("news", random.Random(seed))
        for _ in range(3000):
            np = gen.noun_np()
            for case in (NOM, ACC, DAT, GEN):
                check((case, " ".join(np_en(np))), _de(np, case))
    assert repeats > 1000


def test_write_parallel_equals_generate_pairs_for_any_worker_count(tmp_path):
    n = CHUNK + 300  # two chunks: the pool path
    expected = list(demo.generate_pairs(n, 3, "demo"))
    summary = demo.write_parallel(
        tmp_path / "x.en", tmp_path / "x.de", n, 3, "demo", workers=2, progress=False
    )
    got = list(zip(_read(tmp_path / "x.en"), _read(tmp_path / "x.de"), strict=True))
    assert got == expected
    assert summary["pairs"] == summary["clean"] == n
    assert summary["en_words"] == sum(len(e.split()) for e, _ in expected)


# ----------------------------------------------------------------------------- noise


def test_every_noise_kind_is_present_and_detectable(corpus):
    root, summary = corpus
    dev, test = _devtest(root)
    contaminated = {s for pair in dev + test for s in pair}
    all_pairs = []
    for name in ALL:
        pairs = _train(root, name)
        all_pairs += pairs
        found = Counter(demo.noise_kind(en, de, contaminated) for en, de in pairs)
        expected = summary["corpora"][name]["noise"]
        for kind in NOISE_KINDS:
            if kind != "duplicate":
                assert found[kind] == expected[kind], (name, kind)
    assert all(summary["noise"][k] >= 1 for k in NOISE_KINDS)
    # Exact duplicates, across corpora: every repeat of a pair is an injected duplicate.
    assert len(all_pairs) - len(set(all_pairs)) == summary["noise"]["duplicate"]
    # HTML is mostly web text.
    assert summary["corpora"]["commoncrawl"]["noise"]["html"] > summary["noise"]["html"] / 2


def test_noisy_pairs_look_like_their_kind(corpus):
    root, _ = corpus
    pairs = [p for name in ALL for p in _train(root, name)]
    kinds = {}
    for en, de in pairs:
        kinds.setdefault(demo.noise_kind(en, de), []).append((en, de))
    assert all(max(len(e.split()), len(d.split())) > 250 for e, d in kinds["overlong"])
    for e, d in kinds["ratio"]:
        a, b = len(e.split()), len(d.split())
        assert max(a, b) >= 2.5 * min(a, b)
    assert any(re.search(r"<a href=|<br|&nbsp;|</?\w+>", e + d) for e, d in kinds["html"])
    for e, d in kinds["html"]:  # only the markup is wrong: length and ratio are fine
        a, b = len(e.split()), len(d.split())
        assert max(a, b) <= 1.5 * min(a, b)
    assert all(e == d for e, d in kinds["copy"])
    clean = set(pairs)
    for e, d in kinds["control"]:
        assert "\n" not in e + d and "\x0b" not in e + d and "\u2028" not in e + d
        # C0 controls sit between words (the cleaner makes them spaces), zero-width
        # characters anywhere (the cleaner deletes them): either way the clean pair is back.
        stripped = tuple(
            " ".join(
                demo.CONTROL_RE.sub(
                    lambda m: " " if m[0] < " " or m[0] == "\x7f" else "", s
                ).split()
            )
            for s in (e, d)
        )
        assert demo.noise_kind(*stripped) is None and stripped not in clean


def test_clean_pairs_are_demo_length_and_within_the_cleaner_limits(corpus):
    root, summary = corpus
    clean = [p for name in ALL for p in _train(root, name) if demo.noise_kind(*p) is None]
    lengths = [len(en.split()) for en, _ in clean]
    assert min(lengths) >= 3 and max(lengths) <= 30
    assert 8.5 <= sum(lengths) / len(lengths) <= 11.5
    assert summary["words"]["max_en"] <= 30


def test_write_parallel_noise_matches_its_summary(tmp_path):
    contamination = list(demo.generate_pairs(40, 99, "newstest"))
    summary = demo.write_parallel(
        tmp_path / "n.en", tmp_path / "n.de", 800, 5, "demo", noise=0.1,
        contamination=contamination, progress=False,
    )  # fmt: skip
    pairs = list(zip(_read(tmp_path / "n.en"), _read(tmp_path / "n.de"), strict=True))
    assert len(pairs) == summary["pairs"] == 880
    found = Counter(demo.noise_kind(e, d, {s for p in contamination for s in p}) for e, d in pairs)
    for kind in NOISE_KINDS:
        if kind != "duplicate":
            assert found[kind] == summary["noise"][kind] >= 1, kind
    assert len(pairs) - len(set(pairs)) == summary["noise"]["duplicate"] >= 1


# ----------------------------------------------------------------------------- dev and test


def test_dev_and_test_are_disjoint_news_sets_in_several_documents(corpus):
    root, summary = corpus
    dev, test = _devtest(root)
    assert len(test) == CFG.test_pairs and summary["test"]["docs"] > 1
    assert len(re.findall(r"<doc ", (root / demo.TEST_SRC).read_text())) == summary["test"]["docs"]
    for side in (0, 1):
        assert not {p[side] for p in dev} & {p[side] for p in test}
        assert len({p[side] for p in dev + test}) == len(dev) + len(test)
    assert all(demo.noise_kind(en, de) is None for en, de in dev + test)
    # Entities in the SGML files come back as the characters: quotes and apostrophes.
    assert any('"' in en and "„" in de for en, de in test)
    assert any("'" in en for en, _ in test)


# ----------------------------------------------------------------------------- grammar

NOUN = LEXICON.nouns
ADJ = {a.en: a for a in LEXICON.adjectives}
VERB = {(v.en[0], v.full_inf): v for v in LEXICON.verbs}


def _de(np: NP, case: int) -> str:
    return " ".join(np_de(np, case))


def test_articles_and_adjectives_agree_in_gender_number_and_case():
    plan, new = NOUN["plan"], ADJ["new"]  # der Plan (masculine)
    assert _de(NP(plan, "the"), ACC) == "den Plan"
    assert _de(NP(plan, "the", adj=new), ACC) == "den neuen Plan"  # weak
    assert _de(NP(plan, "a", adj=new), NOM) == "ein neuer Plan"  # mixed
    assert _de(NP(plan, "a", adj=new), ACC) == "einen neuen Plan"
    assert _de(NP(plan, "zero", adj=new, plural=True), DAT) == "neuen Plänen"  # strong
    assert _de(NP(NOUN["child"], "zero", adj=new, plural=True), NOM) == "neue Kinder"
    assert _de(NP(NOUN["commission"], "the", adj=new), DAT) == "der neuen Kommission"
    assert _de(NP(NOUN["house"], "a", adj=ADJ["high"]), NOM) == "ein hohes Haus"
    assert _de(NP(NOUN["minister"], "the"), GEN) == "des Ministers"
    assert _de(NP(NOUN["president"], "the"), ACC) == "den Präsidenten"  # weak noun
    assert _de(NP(NOUN["report"], "this", plural=True), DAT) == "diesen Berichten"
    np = NP(NOUN["report"], "the", gen=NP(NOUN["commission"], "the"))
    assert " ".join(np_en(np)) == "the report of the commission"
    assert _de(np, NOM) == "der Bericht der Kommission"
    merkel = next(p for p in LEXICON.persons if p.en == "Merkel")
    assert " ".join(np_en(NP(plan, poss=merkel))) == "Merkel's plan"
    assert _de(NP(plan, poss=merkel, adj=new), NOM) == "Merkels neuer Plan"
    assert " ".join(np_en(NP(NOUN["order"], "a", adj=ADJ["old"]))) == "an old order"
    assert " ".join(np_en(NP(LEXICON.compounds["EU directive"], "a"))) == "an EU directive"


def test_prepositions_govern_case_and_contract():
    assert " ".join(pp_de(PP("in", NP(NOUN["city"], "the")))) == "in der Stadt"
    assert " ".join(pp_de(PP("in", NP(NOUN["hotel"], "the")))) == "im Hotel"
    assert " ".join(pp_de(PP("into", NP(NOUN["house"], "the")))) == "ins Haus"
    assert " ".join(pp_de(PP("for", NP(NOUN["plan"], "the")))) == "für den Plan"
    assert " ".join(pp_de(PP("with", NP(NOUN["friend"], "our", plural=True)))) == (
        "mit unseren Freunden"
    )
    assert " ".join(pp_de(PP("during", NP(NOUN["summit"], "the")))) == "während des Gipfels"
    berlin = next(p for p in LEXICON.places if p.en == "Berlin")
    assert " ".join(pp_de(PP("to", NP(name=berlin)))) == "nach Berlin"


def _support(subj: NP, acc: NP, **kw) -> Clause:
    return Clause(subj, VERB[("support", "unterstützen")], "A", acc=acc, **kw)


def test_verb_second_main_clauses_and_verb_final_subordinate_clauses():
    minister, plan = NP(NOUN["minister"], "the"), NP(NOUN["plan"], "the")
    cl = _support(minister, plan)
    assert " ".join(main_de(cl)) == "der Minister unterstützt den Plan"
    cl = _support(minister, plan, time=(["today"], ["heute"]), front="time")
    assert " ".join(clause_en(cl)) == "today the minister supports the plan"
    assert " ".join(main_de(cl)) == "heute unterstützt der Minister den Plan"  # inversion
    cl = _support(minister, plan, tense="perf")
    assert " ".join(main_de(cl)) == "der Minister hat den Plan unterstützt"  # bracket
    assert sub_de(cl, "dass")[-2:] == ["unterstützt", "hat"]  # verb-final
    announce = VERB[("announce", "ankündigen")]
    cl = Clause(NP(NOUN["commission"], "the"), announce, "A", acc=plan)
    assert " ".join(main_de(cl)) == "die Kommission kündigt den Plan an"  # separable
    assert " ".join(sub_de(cl, "weil")) == ", weil die Kommission den Plan ankündigt"
    cl = _support(minister, plan, tense="can", neg=True)
    assert " ".join(clause_en(cl)) == "the minister cannot support the plan"
    assert " ".join(main_de(cl)) == "der Minister kann den Plan nicht unterstützen"
    # nicht + ein -> kein
    cl = _support(NP(pron="we"), NP(NOUN["plan"], "a"), neg=True, contract=True)
    assert " ".join(clause_en(cl)) == "we don't support a plan"
    assert " ".join(main_de(cl)) == "wir unterstützen keinen Plan"
    # a fronted subordinate clause takes the first position: verb, then subject
    fail = VERB[("fail", "scheitern")]
    resign = VERB[("resign", "zurücktreten")]
    cl = Clause(minister, resign, "I", sub=("if", Clause(plan, fail, "I")), front="sub")
    assert " ".join(clause_en(cl)) == "if the plan fails, the minister resigns"
    assert " ".join(main_de(cl)) == "wenn der Plan scheitert, tritt der Minister zurück"


def test_generated_subordinate_clauses_end_with_a_finite_verb():
    finite = {v.present(p) for v in LEXICON.verbs for p in ("1sg", "3sg", "pl")}
    finite |= {v.prefix + v.present(p) for v in LEXICON.verbs for p in ("1sg", "3sg", "pl")}
    finite |= {"bin", "ist", "sind", "habe", "hat", "haben", "werde", "wird", "werden"}
    finite |= {f for m in demo.MODALS.values() for forms in m[2:] if forms for f in forms.values()}
    gen = demo.SentenceGenerator("europarl-v7", random.Random(3))
    checked = 0
    for _ in range(300):
        cl = gen.clause(1)
        words = sub_de(cl, "dass")
        if cl.comp is None:  # the clause's own verb is its last word
            assert words[-1] in finite, words
            checked += 1
    assert checked > 200


def test_compounds_numbers_quotes_and_apostrophes():
    assert NOUN["interest rate"].forms[0][0] == "Zinssatz"
    comp = LEXICON.compounds
    assert comp["city council"].forms[0][0] == "Stadtrat"
    assert comp["government plan"].forms[1][0] == "Regierungspläne"
    assert comp["EU commission"].forms[0][0] == "EU-Kommission"
    assert comp["CO2 emission"].forms[1][0] == "CO2-Emissionen"
    assert comp["US president"].forms[0][1] == "US-Präsidenten"
    pairs = list(demo.generate_pairs(4000, 11, "newstest"))
    en_text = "\n".join(e for e, _ in pairs)
    de_text = "\n".join(d for _, d in pairs)
    assert re.search(r"\w-\w", de_text) and "'" in en_text and "'" not in de_text
    quoted = [(e, d) for e, d in pairs if '"' in e]
    assert quoted and all('"' not in d and "„" in d and "“" in d for _, d in quoted)
    swap = str.maketrans(",.", ".,")
    number = re.compile(r"\d+(?:[.,]\d+)*")
    marked = 0
    for en, de in pairs:  # 3.5 -> 3,5 and 12,500 -> 12.500 (German order may differ)
        nums = number.findall(en)
        assert Counter(n.translate(swap) for n in nums) == Counter(number.findall(de)), (en, de)
        marked += any("." in n or "," in n for n in nums)
    assert marked > 20


def test_lexicon_has_the_stated_size_and_categories():
    stats = demo.lexicon_stats()
    assert stats["lemmas"] >= 300
    assert stats["nouns"] >= 150 and stats["adjectives"] >= 40 and stats["verbs"] >= 80
    assert stats["adverbs"] >= 20 and stats["names"] >= 30 and stats["numbers"] >= 10
    genders = Counter(n.gender for n in NOUN.values())
    assert min(genders[g] for g in (demo.M, demo.F, demo.N)) >= 30
    assert all(n.mass or n.forms[1] is not None for n in NOUN.values())
    assert sum(bool(v.prefix) for v in LEXICON.verbs) >= 10  # separable verbs
    assert sum(v.aux == "s" for v in LEXICON.verbs) >= 8  # perfect with "sein"


def _lexicon_lines() -> list[str]:
    from aiayn.data.demo.lexicon import LEXICON_FILE

    return (Path(demo.__file__).parent / LEXICON_FILE).read_text(encoding="utf-8").split("\n")


def _with_row(lines: list[str], old: str, new: str | None) -> list[str]:
    """``lines`` with the row ``old`` replaced by ``new`` (None: removed)."""
    i = lines.index(old)
    return lines[:i] + ([] if new is None else [new]) + lines[i + 1 :]


def test_lexicon_file_parses_to_the_lexicon():
    from aiayn.data.demo.lexicon import TABLE_FIELDS, Lexicon, parse_tables

    tables = parse_tables(_lexicon_lines(), "lexicon.txt")
    assert list(tables) == list(TABLE_FIELDS)
    assert tables["nouns"][1] == ["woman", "women", "f", "Frau", "Frauen", "core"]
    assert Lexicon(tables).stats() == demo.lexicon_stats()


@pytest.mark.parametrize(
    "old,new,message",
    [
        (
            "woman;women;f;Frau;Frauen;core",
            "woman;women;f;Frau",
            r"lexicon\.txt:16: \[nouns\] rows have 6 or 7 fields separated by ';'; got 4",
        ),
        ("today;heute;any", "today;heute;any\r", r"lexicon\.txt:\d+: leading or trailing"),
        ("[verbs]", "[verb]", r"lexicon\.txt:\d+: '\[verb\]' is not a new table header"),
        ("[places]", "[nouns]", r"'\[nouns\]' is not a new table header"),
        ("[number_words]", None, r"lexicon\.txt: missing tables \[number_words\]$"),
    ],
)
def test_lexicon_file_errors_name_the_line(old, new, message):
    from aiayn.data.demo.lexicon import parse_tables

    with pytest.raises(DataError, match=message):
        parse_tables(_with_row(_lexicon_lines(), old, new), "lexicon.txt")


def test_lexicon_row_outside_a_table_is_an_error():
    from aiayn.data.demo.lexicon import parse_tables

    with pytest.raises(DataError, match=r"^x:3: a row before the first \[table\] header$"):
        parse_tables(["# comment", "", "man;men"], "x")


# ----------------------------------------------------------------------------- profiles


def test_wmt_profile_has_a_wmt_like_length_distribution():
    lengths = [len(en.split()) for en, _ in demo.generate_pairs(2500, 4, "wmt")]
    assert 19 <= sum(lengths) / len(lengths) <= 27
    assert max(lengths) > 80 and min(lengths) < 8
    with pytest.raises(ValueError, match="profile"):
        next(demo.generate_pairs(1, 1, "europarl"))
