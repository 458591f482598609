"""The ``clean`` stage: normalisation, each filter, dedup, decontamination and the report."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiayn import paths
from aiayn.config import CleanConfig
from aiayn.data import clean as cl
from aiayn.data.clean import FILTERS, clean, normalize_block, plausible
from aiayn.data.clean import normalise as cn
from aiayn.errors import ConfigError, DataError, MissingInputError

ROOT = Path(__file__).resolve().parent.parent

Pair = tuple[bytes | str, bytes | str]


def _b(x: bytes | str) -> bytes:
    return x if isinstance(x, bytes) else x.encode()


def make_raw(
    root: Path,
    corpora: dict[str, list[Pair]],
    dev: list[Pair] = (("dev source one here", "Dev Quelle eins hier"),),
    test: list[Pair] = (("test source one here", "Test Quelle eins hier"),),
) -> Path:
    """A ``data/raw`` folder as the download stage writes it."""
    manifest: dict = {"source": "test", "corpora": {}}

    def write(en_path: Path, de_path: Path, pairs) -> dict:
        for p, side in ((en_path, 0), (de_path, 1)):
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"".join(_b(pair[side]) + b"\n" for pair in pairs))
        return {
            "lines": len(pairs),
            "en": en_path.relative_to(root).as_posix(),
            "de": de_path.relative_to(root).as_posix(),
        }

    for name, pairs in corpora.items():
        manifest["corpora"][name] = write(
            paths.raw_train(name, "en", root), paths.raw_train(name, "de", root), pairs
        )
    manifest["dev"] = write(paths.raw_dev("en", root), paths.raw_dev("de", root), dev)
    manifest["test"] = write(paths.raw_test("en", root), paths.raw_test("de", root), test)
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def run_clean(tmp_path: Path, cfg: CleanConfig | None = None, **raw_kw):
    raw = make_raw(tmp_path / "raw", **raw_kw)
    out, rj, rm = tmp_path / "clean", tmp_path / "reports/data.json", tmp_path / "reports/data.md"
    report = clean(cfg or CleanConfig(), raw, out, rj, rm)
    assert json.loads(rj.read_text()) == report
    train = list(
        zip(
            paths.clean_split("train", "en", out).read_text(encoding="utf-8").splitlines(),
            paths.clean_split("train", "de", out).read_text(encoding="utf-8").splitlines(),
            strict=True,
        )
    )
    return report, train, out


GOOD = ("the old house stands here", "das alte Haus steht hier")

# ----------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    "raw, want",
    [
        ("Cafe\u0301 Zu\u200bkunft", "Café Zukunft"),  # NFC; zero-width space deleted
        ("a\x01b\tc\x7fd\x9fe", "a b c d e"),  # C0/C1 controls and tab -> space
        ("  many   spaces\u00a0 here  ", "many spaces here"),  # collapsed, NBSP included
        ("soft\u00adhyphen \ufeffbom \u202aembed\u202c", "softhyphen bom embed"),
        ("line\rbreak\x0bv\x0cf\x1cfs\x85nel\u2028ls\u2029ps", "line break v f fs nel ls ps"),
    ],
)
def test_normalisation(raw, want):
    d = normalize_block((raw + "\n").encode(), CleanConfig())
    assert d.lines == [want]


def test_line_breaking_characters_never_split_or_survive():
    """Whatever the settings, one input line stays one output line without \\r & co."""
    cfg = CleanConfig(remove_control=False, collapse_whitespace=False, unicode_nfc=False)
    d = normalize_block("a\rb\u2028c\x85d\n\x01x\u200b\n".encode(), cfg)
    assert d.lines == ["a b c d", "\x01x\u200b"]  # breaks -> space; other settings off


SPECIALS = (
    "ab Z \n\n  \t\r\x01\x1f\x85\xa0\u00ad\u200b\u200d\u2028\u3000\u2000\ufeff"
    "e\u0301\u0327\u0316\u05b0A\u030a\u212b\u1100\u1161\u11a8\uac00\u0958\u0f73\U0001d15e"
    "\U0001d165\U0002f800\U0001f600äß„“\ufffd"
    "<>&;#/=\"'xbrpna013"  # HTML: tags and entities from single characters
)
# Whole tags and entities, which single characters rarely spell: ones that unescape to a
# space, a break, a control, an invisible or a combining character test the step order.
HTML_TOKENS = (
    "<br>", "<br />", "</p>", "<b>", "</b>", '<a href="u v">', "<a x=1 y>", "&nbsp;", "&amp;",
    "&lt;", "&gt;", "&#10;", "&#13;", "&#x85;", "&#133;", "&#x2028;", "&#x301;", "&#8203;",
    "&#0;", "&#xD800;", "&shy;", "&amp", "&noti;", "&foo;", "&#x1D165;",
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    text=st.lists(st.sampled_from([*SPECIALS, *HTML_TOKENS]), max_size=30).map("".join),
    flags=st.tuples(st.booleans(), st.booleans(), st.booleans(), st.booleans()),
)
def test_fast_normalisation_equals_the_per_line_definition(text, flags):
    """normalize_text (one regex scan, per-line work only where needed) and the bytes path
    of the pair loop both equal normalize_line applied to every line, and count exactly
    the lines that strip_html changes."""
    cfg = CleanConfig(
        unicode_nfc=flags[0],
        remove_control=flags[1],
        collapse_whitespace=flags[2],
        strip_html=flags[3],
    )
    raw = text.split("\n")
    want = [cl.normalize_line(line, cfg) for line in raw]
    html = [k for k, line in enumerate(raw) if cfg.strip_html and cl.strip_html(line) != line]
    assert cl.normalize_text(text, cfg).split("\n") == want
    data = text.encode()
    lines, _, _, html_lines = cn.normalized_bytes(data + b"\n", cfg)
    assert lines == [w.encode() for w in want]
    assert html_lines == html
    d = normalize_block(data + b"\n", cfg)
    assert d.lines == want and list(d.html_lines) == html


# ----------------------------------------------------------------------------- HTML


@pytest.mark.parametrize(
    "raw, want",
    [
        ("the city council met <br>", "the city council met"),
        ("the city council met <br />", "the city council met"),
        ("the city council met <BR/>", "the city council met"),
        ("der Rat tagte </p>", "der Rat tagte"),
        ("der Rat tagte </div>", "der Rat tagte"),
        ("a&nbsp;b", "a b"),
        ("the&nbsp;city council", "the city council"),
        ('<a href="http://x/y.html">the city council</a>', "the city council"),
        ("<a href='/x' class=nav target=\"_blank\">Hotel</a> Berlin", "Hotel Berlin"),
        ("<b>the city council</b>", "the city council"),
        ("<p>the city council</p>", "the city council"),
        ("<strong>der Rat</strong>", "der Rat"),
        ("<li>der Rat</li>", "der Rat"),
        ('<span style="color: red">der Rat</span>', "der Rat"),
        ("Kosten &amp; Nutzen", "Kosten & Nutzen"),
        ("weiter &gt;&gt;", "weiter >>"),
        ("Punkt &#8226;", "Punkt \u2022"),
        ("Punkt &#x2022;", "Punkt \u2022"),
        ("mehr &raquo;", "mehr \u00bb"),
        ("wo<b>rd</b>", "word"),  # inline tags join, block tags separate
        ("eins<br>zwei<p>drei</li>vier", "eins zwei drei vier"),
        ("&lt;b&gt; is a tag", "<b> is a tag"),  # tags first, then entities: not re-stripped
    ],
)
def test_html_is_stripped(raw, want):
    d = normalize_block((raw + "\n").encode(), CleanConfig())
    assert d.lines == [want] and d.html_lines == (0,)
    assert cl.normalize_line(raw, CleanConfig()) == want


@pytest.mark.parametrize(
    "text",
    [
        "3 < 4",
        "<3",
        "a<b",  # never closed
        "x << y >> z",
        "a <= b and c >= d",
        "< b >",  # no name right after "<"
        "<1a>",  # a name starts with a letter
        "<>",
        "AT&T and Q&A",
        "?id=3&para=1&amp",  # no ";": not unescaped
        "&foo; &noti;",  # no such entity
        "& ; &#; &#x;",
    ],
)
def test_text_that_is_not_html_is_kept(text):
    d = normalize_block((text + "\n").encode(), CleanConfig())
    assert d.lines == [text] and d.html_lines == ()


@pytest.mark.parametrize(
    "raw, want",
    [
        ("Cafe&#x301; au lait", "Café au lait"),  # NFC after unescaping
        ("zero&#8203;width &shy;soft", "zerowidth soft"),  # invisible: deleted
        ("tab&#9;here", "tab here"),  # control: a space
        ("bell&#7;here", "bellhere"),  # html.unescape drops C0 controls but tab, LF, FF, CR
        ("one&#10;two&#13;three&#x2028;four", "one two three four"),  # breaks: one line
        ("nul &#0; &#xD800; &#1114112;", "nul \ufffd \ufffd \ufffd"),  # HTML5 rules
        ("huge &#" + "9" * 5000 + "; &#x" + "f" * 5000 + ";", "huge \ufffd \ufffd"),
        ("padded &#000000000038; &#x0000000026;", "padded & &"),
        ("cp1252 &#128; &#x85;", "cp1252 \u20ac \u2026"),
        ("a &nbsp; &nbsp; b", "a b"),  # unescaped NBSPs are collapsed
    ],
)
def test_html_unescapes_before_the_other_steps(raw, want):
    d = normalize_block((raw + "\nnext\n").encode(), CleanConfig())
    assert d.lines == [want, "next"]


def test_strip_html_off_leaves_html(tmp_path):
    cfg = CleanConfig(strip_html=False)
    raw = '<a href="x">Kosten &amp; Nutzen</a><br>&nbsp;&#10;'
    d = normalize_block((raw + "\n").encode(), cfg)
    assert d.lines == [raw] and d.html_lines == ()
    assert cl.normalize_line(raw, cfg) == raw
    pair = ("the <b>old</b> house stands here", "das alte Haus steht &amp; hier")
    report, train, _ = run_clean(tmp_path, cfg, corpora={"commoncrawl": [pair]})
    assert train == [pair]
    assert report["total"]["html"] == {"en_lines": 0, "de_lines": 0, "pairs": 0}
    assert "strip_html is off" in (tmp_path / "reports/data.md").read_text()


@pytest.mark.parametrize(
    "text",
    [
        "\u1100\u1161",  # Hangul L + V jamo compose
        "\uac00\u11a8",  # LV syllable + T jamo compose
        "x\u0316\u05b0",  # marks out of canonical order (neither composes)
        "A\u030a",  # composition
        "\u212b \u2126 \u0958 \u0f73",  # singletons, exclusions, non-starter decompositions
        "\U0001d15e \U0002f800",  # beyond U+FFFF: musical symbol, CJK compatibility
        "\U0001d157\U0001d165",  # composes beyond U+FFFF? (excluded: must stay apart)
        "\u0b47\u0b3e \u0dd9\u0dcf",  # starters that compose with a preceding starter
    ],
)
def test_nfc_cases(text):
    import unicodedata

    cfg = CleanConfig(remove_control=False, collapse_whitespace=False)
    assert ascii(cl.normalize_text(text, cfg)) == ascii(unicodedata.normalize("NFC", text))
    assert normalize_block(text.encode(), cfg).lines == [unicodedata.normalize("NFC", text)]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=12))
def test_strings_without_nfc_sensitive_characters_are_nfc(text):
    """The premise of the fast path: no NFC-sensitive character means already NFC."""
    import unicodedata

    bmp, astral = cn._nfc_sensitive()
    if not re.search(f"[{bmp}]", text) and not any(c in astral for c in text):
        assert unicodedata.is_normalized("NFC", text)
    assert cl.normalize_text(text.replace("\n", " "), CleanConfig()) == cl.normalize_line(
        text.replace("\n", " "), CleanConfig()
    )


def test_every_unicode_space_is_collapsed():
    cfg = CleanConfig(remove_control=False, unicode_nfc=False)
    spaces = [chr(c) for c in range(0x110000) if chr(c).isspace() and chr(c) != "\n"]
    text = "\n".join(f" a{c}{c}b{c}" for c in spaces)
    assert normalize_block(text.encode(), cfg).lines == ["a b"] * len(spaces)


def test_invalid_utf8_replaced_and_counted():
    data = b"caf\xe9 ok\nfine \xef\xbf\xbd already\n\xff\xfe two bad\n"
    d = normalize_block(data, CleanConfig())
    assert d.lines == ["caf\ufffd ok", "fine \ufffd already", "\ufffd\ufffd two bad"]
    assert (d.invalid_lines, d.replacements) == (2, 3)  # a valid U+FFFD is not counted


def test_last_line_without_newline():
    assert normalize_block(b"a\nb", CleanConfig()).lines == ["a", "b"]
    assert normalize_block(b"", CleanConfig()).lines == []


# ----------------------------------------------------------------------------- filters


@pytest.mark.parametrize(
    "pair, cfg, filter_",
    [
        (("", "etwas"), {}, "empty"),
        (("\u200b \x01", "etwas"), {}, "empty"),  # empty after normalisation
        (("one two three", "eins zwei drei"), {"min_words": 4}, "length"),
        (("w " * 6, "v " * 6), {"max_words": 5}, "length"),
        (("one two three four", "eins zwei"), {}, "ratio"),  # 4/2 > 1.5
        (("same text here", "same text here"), {}, "copy"),
        (("Same  text\u200b here", "Same text here"), {}, "copy"),  # equal once normalised
        (("der Hund und die Katze", "der Hund und die Katze sind"), {"lang_filter": True}, "lang"),
        (("dev source one here", "irgendwas anderes hier jetzt"), {}, "contaminated"),
        (("something else here now", "Test Quelle eins hier"), {}, "contaminated"),
        (("Test Quelle eins hier", "kreuz und quer"), {}, "contaminated"),  # any side, any set
    ],
)
def test_each_filter(tmp_path, pair, cfg, filter_):
    report, train, _ = run_clean(
        tmp_path, CleanConfig(**cfg), corpora={"europarl-v7": [GOOD, pair, GOOD[::-1]]}
    )
    c = report["corpora"]["europarl-v7"]
    assert c["dropped"] == {f: int(f == filter_) for f in FILTERS}
    assert c["kept"] == 2 and train == [GOOD, GOOD[::-1]]


@pytest.mark.parametrize(
    "cfg, pair",
    [
        ({"drop_copies": False}, ("same text here", "same text here")),
        ({"decontaminate": False}, ("dev source one here", "irgendwas anderes hier jetzt")),
        ({"max_ratio": 2.0}, ("one two three four", "eins zwei")),
        ({"lang_filter": False}, ("der Hund und die Katze", "der Hund und die Katze sind")),
    ],
)
def test_switched_off_filters_keep_the_pair(tmp_path, cfg, pair):
    report, train, _ = run_clean(tmp_path, CleanConfig(**cfg), corpora={"europarl-v7": [pair]})
    assert report["corpora"]["europarl-v7"]["kept"] == 1 and len(train) == 1


def test_first_filter_gets_the_pair(tmp_path):
    """A pair several filters would drop is counted once, under the first in FILTERS."""
    copy_too_long = ("x " * 300, "x " * 300)  # length (first), copy
    short_copy_in_dev = ("dev source one here", "dev source one here")  # copy, contaminated
    ratio_and_lang = ("the cat is on the mat now", "ok")  # ratio, lang
    dup_of_dropped = ("dev source one here", "dev source one here")  # same verdict again
    report, train, _ = run_clean(
        tmp_path,
        CleanConfig(lang_filter=True),
        corpora={"commoncrawl": [copy_too_long, short_copy_in_dev, ratio_and_lang, dup_of_dropped]},
    )
    d = report["corpora"]["commoncrawl"]["dropped"]
    assert (d["length"], d["copy"], d["ratio"], d["contaminated"], d["lang"]) == (1, 2, 1, 0, 0)
    assert d["duplicate"] == 0 and train == []


def test_language_heuristic():
    assert plausible("The house is on the hill and it is old.", "en", 2)
    assert not plausible("Das Haus ist auf dem Hügel und es ist alt.", "en", 2)
    assert plausible("Das Haus ist auf dem Hügel und es ist alt.", "de", 2)
    assert not plausible("The house is on the hill and it is old.", "de", 2)
    assert not plausible("Дом стоит на холме.", "en", 2)  # not Latin script
    assert plausible("Angela Merkel 2014", "en", 2) and plausible("Angela Merkel 2014", "de", 2)
    # one stray word of the other language is not enough with margin 2
    assert plausible("Er sagte: the end.", "de", 2)


# ----------------------------------------------------------------------------- dedup, dev/test


def test_dedup_across_corpora_keeps_first(tmp_path):
    a, b = GOOD, ("a new day has come", "ein neuer Tag ist da")
    a_spaced = ("the  old house stands here ", "das alte Haus\tsteht hier")
    report, train, _ = run_clean(
        tmp_path,
        corpora={
            "europarl-v7": [a, b, a],
            "commoncrawl": [b, a_spaced, ("x y z", "x y q")],
            "news-commentary-v9": [a],
        },
    )
    dup = {n: c["dropped"]["duplicate"] for n, c in report["corpora"].items()}
    assert dup == {"europarl-v7": 1, "commoncrawl": 2, "news-commentary-v9": 1}
    assert train == [a, b, ("x y z", "x y q")]
    # the same side with another partner is not a duplicate pair
    report, train, _ = run_clean(
        tmp_path / "2", corpora={"europarl-v7": [a, (a[0], "anders hier jetzt ja")]}
    )
    assert len(train) == 2


def test_dedup_off_keeps_duplicates(tmp_path):
    report, train, _ = run_clean(
        tmp_path, CleanConfig(dedup=False), corpora={"europarl-v7": [GOOD, GOOD]}
    )
    assert train == [GOOD, GOOD] and report["total"]["dropped"]["duplicate"] == 0


def test_dev_test_normalised_never_filtered(tmp_path):
    dev = [("", "leer"), ("same", "same"), ("Cafe\u0301  x", "ok\u200b"), ("w " * 400, "v")]
    test = [(b"bad \xff byte", "gut"), ("a", "b")]
    report, _, out = run_clean(tmp_path, corpora={"europarl-v7": [GOOD]}, dev=dev, test=test)
    dev_en = paths.clean_split("dev", "en", out).read_text().split("\n")[:-1]
    assert dev_en == ["", "same", "Café x", " ".join(["w"] * 400)]
    assert paths.clean_split("dev", "de", out).read_text().split("\n")[:-1] == [
        "leer",
        "same",
        "ok",
        "v",
    ]
    assert paths.clean_split("test", "en", out).read_text() == "bad \ufffd byte\na\n"
    assert report["dev"]["lines"] == 4 and report["test"]["lines"] == 2
    assert report["test"]["invalid_utf8"]["en_lines"] == 1


def test_report_adds_up(tmp_path):
    corpora = {
        "europarl-v7": [
            GOOD,
            GOOD,
            ("", "x"),
            ("a b c d", "a"),
            (b"caf\xe9 au lait", "Milchkaffee mit Milch"),
        ],
        "commoncrawl": [GOOD, ("same one", "same one"), ("fine pair", "gutes Paar")],
    }
    report, train, _ = run_clean(tmp_path, corpora=corpora)
    for name, c in report["corpora"].items():
        assert c["input"] == len(corpora[name])
        assert c["kept"] + sum(c["dropped"].values()) == c["input"]
        assert c["dropped_total"] == sum(c["dropped"].values())
    t = report["total"]
    assert t["input"] == 8 and t["kept"] == len(train) == 3
    assert t["dropped"] == {
        f: sum(c["dropped"][f] for c in report["corpora"].values()) for f in FILTERS
    }
    assert report["corpora"]["europarl-v7"]["invalid_utf8"] == {
        "en_lines": 1,
        "en_replacements": 1,
        "de_lines": 0,
        "de_replacements": 0,
    }
    md = (tmp_path / "reports/data.md").read_text()
    header = "| corpus | input | " + " | ".join(FILTERS) + " | kept | kept % |"
    assert header in md
    assert "| total | 8 | 1 | 0 | 1 | 1 | 0 | 0 | 2 | 3 | 37.5 |" in md


def test_parallel_equals_serial(tmp_path, monkeypatch):
    pairs = [
        (f"pair number {i % 37} is here", f"Paar Nummer {i % 37} ist hier") for i in range(150)
    ]
    pairs += [("", "x"), ("dev source one here", "y z w"), ("<br>&nbsp;", "&#8203;")] * 5
    corpora = {"europarl-v7": pairs, "commoncrawl": pairs[::-1]}
    serial = run_clean(tmp_path / "s", CleanConfig(workers=1), corpora=corpora)
    monkeypatch.setattr(cl, "PARALLEL_MIN_PAIRS", 0)
    monkeypatch.setattr(cl, "CHUNK_PAIRS", 13)
    parallel = run_clean(tmp_path / "p", CleanConfig(workers=2), corpora=corpora)
    assert parallel[0] == serial[0] and parallel[1] == serial[1]
    assert len(serial[1]) == 37
    assert serial[0]["total"]["html"] == {"en_lines": 10, "de_lines": 10, "pairs": 10}


# ----------------------------------------------------------------------------- bad input


def test_misaligned_raw_names_files_and_counts(tmp_path):
    raw = make_raw(tmp_path / "raw", corpora={"commoncrawl": [GOOD] * 5})
    de = paths.raw_train("commoncrawl", "de", raw)
    de.write_text("eins\nzwei\n")
    with pytest.raises(DataError, match=rf"{raw}/train/commoncrawl\.en has 5 lines but {de} has 2"):
        clean(CleanConfig(), raw, tmp_path / "clean", tmp_path / "r.json", tmp_path / "r.md")
    assert not (tmp_path / "clean").exists() and not (tmp_path / "r.json").exists()


def test_failure_leaves_previous_outputs(tmp_path):
    raw = make_raw(tmp_path / "raw", corpora={"commoncrawl": [GOOD]})
    out = tmp_path / "clean"
    out.mkdir()
    (out / "train.en").write_text("old\n")
    m = json.loads((raw / "manifest.json").read_text())
    m["corpora"]["commoncrawl"]["lines"] = 7
    (raw / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DataError, match=r"has 1 lines but .*manifest\.json says 7"):
        clean(CleanConfig(), raw, out, tmp_path / "r.json", tmp_path / "r.md")
    assert (out / "train.en").read_text() == "old\n" and len(list(out.iterdir())) == 1


def test_bad_manifest(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match=r"manifest\.json: not a valid JSON manifest"):
        clean(CleanConfig(), raw, tmp_path / "c", tmp_path / "r.json", tmp_path / "r.md")


def test_min_words_above_max_words(tmp_path):
    with pytest.raises(ConfigError, match="clean.min_words"):
        run_clean(tmp_path, CleanConfig(min_words=9, max_words=3), corpora={"commoncrawl": [GOOD]})


def test_stage_before_download_is_a_one_line_error(tmp_path, capsys):
    from aiayn.cli_util import run

    with pytest.raises(
        MissingInputError,
        match=r"missing input .*manifest\.json \(run `dvc repro download` first\)",
    ):
        clean(
            CleanConfig(), tmp_path / "raw", tmp_path / "c", tmp_path / "r.json", tmp_path / "r.md"
        )

    spec = importlib.util.spec_from_file_location("stage_clean", ROOT / "stages/clean.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    argv = [
        "--params",
        str(ROOT / "params.yaml"),
        "--raw",
        str(tmp_path / "raw"),
        "--out",
        str(tmp_path / "c"),
        "--report-json",
        str(tmp_path / "r.json"),
        "--report-md",
        str(tmp_path / "r.md"),
    ]
    with pytest.raises(SystemExit) as e:
        run(mod.app, argv)
    assert e.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: missing input ")
    assert not (tmp_path / "c").exists() and not (tmp_path / "r.json").exists()


def test_params_min_words_above_max_words_names_the_key():
    from aiayn.config import load_params, params_from_dict, to_dict

    d = to_dict(load_params(ROOT / "params.yaml"))
    d["clean"]["min_words"] = 300
    with pytest.raises(
        ConfigError, match=r"clean\.min_words must be <= clean\.max_words=250; got 300"
    ):
        params_from_dict(d, "p.yaml")


# ----------------------------------------------------------------------------- HTML report


def test_html_counts_in_the_report(tmp_path):
    """Input lines strip_html changed, per corpus and side, before any filter; pairs with
    either side changed; dev and test too."""
    corpora = {
        "europarl-v7": [
            GOOD,
            ("the <b>new</b> house stands here", "das neue Haus steht hier"),  # en
            ("the new house stands here", "das neue Haus steht hier"),  # = the one above
            ("<br>", "leer"),  # en; then dropped as empty: still counted
            ("a &amp; b here", "a &amp; b hier"),  # both sides
        ],
        "commoncrawl": [
            ("the <b>new</b> house stands here", "das neue Haus steht hier"),  # a duplicate
            ("3 < 4 is true", "3 < 4 ist wahr"),  # no HTML
            ("one more line", "noch eine Zeile &raquo;"),  # de
        ],
    }
    dev = [("dev&nbsp;one", "Dev eins"), ("plain", "schlicht")]
    test = [("t", "<p>t</p>"), ("u", "&#8226; u")]
    report, train, out = run_clean(tmp_path, corpora=corpora, dev=dev, test=test)
    c = report["corpora"]
    assert c["europarl-v7"]["html"] == {"en_lines": 3, "de_lines": 1, "pairs": 3}
    assert c["commoncrawl"]["html"] == {"en_lines": 1, "de_lines": 1, "pairs": 2}
    assert report["total"]["html"] == {"en_lines": 4, "de_lines": 2, "pairs": 5}
    assert report["dev"]["html"] == {"en_lines": 1, "de_lines": 0, "pairs": 1}
    assert report["test"]["html"] == {"en_lines": 0, "de_lines": 2, "pairs": 2}
    assert c["europarl-v7"]["dropped"]["empty"] == 1
    assert c["europarl-v7"]["dropped"]["duplicate"] == 1  # equal once stripped
    assert c["commoncrawl"]["dropped"]["duplicate"] == 1
    assert ("a & b here", "a & b hier") in train
    assert ("one more line", "noch eine Zeile \u00bb") in train
    assert paths.clean_split("dev", "en", out).read_text() == "dev one\nplain\n"
    assert paths.clean_split("test", "de", out).read_text() == "t\n\u2022 u\n"
    md = (tmp_path / "reports/data.md").read_text()
    table = md.split("## HTML")[1]
    assert "| corpus | en_lines | de_lines | pairs |" in table
    for row in (
        "| europarl-v7 | 3 | 1 | 3 |",
        "| commoncrawl | 1 | 1 | 2 |",
        "| total | 4 | 2 | 5 |",
        "| dev | 1 | 0 | 1 |",
        "| test | 0 | 2 | 2 |",
    ):
        assert row in table


def test_demo_html_noise_is_all_stripped(tmp_path):
    """On the demo corpus (generate_demo + finalize_raw + clean): the lines stripped are
    exactly the generator's HTML lines, one pair per injected ``html`` noise pair, and no
    kept line holds a tag or an entity (with strip_html off, some do)."""
    from aiayn.config import DemoConfig
    from aiayn.data import demo
    from aiayn.data.download import finalize_raw

    corpora = ["europarl-v7", "commoncrawl", "news-commentary-v9"]
    dcfg = DemoConfig(seed=11, train_pairs=3000, dev_pairs=60, test_pairs=80, noise=0.2)
    summary = demo.generate_demo(dcfg, tmp_path / "staging", corpora)
    raw = tmp_path / "raw"
    finalize_raw(
        tmp_path / "staging",
        raw,
        source="demo",
        corpora=corpora,
        dev_segments=dcfg.dev_pairs,
        test_segments=dcfg.test_pairs,
    )

    def run(cfg: CleanConfig, name: str) -> tuple[dict, list[str]]:
        out = tmp_path / name
        report = clean(cfg, raw, out, tmp_path / f"{name}.json", tmp_path / f"{name}.md")
        kept = [
            line
            for lang in ("en", "de")
            for line in paths.clean_split("train", lang, out).read_text("utf-8").splitlines()
        ]
        return report, kept

    report, kept = run(CleanConfig(), "on")
    injected = 0
    for name in corpora:
        html = report["corpora"][name]["html"]
        en = paths.raw_train(name, "en", raw).read_text("utf-8").splitlines()
        de = paths.raw_train(name, "de", raw).read_text("utf-8").splitlines()
        has = demo.HTML_RE.search
        marked = [(bool(has(e)), bool(has(d))) for e, d in zip(en, de, strict=True)]
        assert html["en_lines"] == sum(a for a, _ in marked)
        assert html["de_lines"] == sum(b for _, b in marked)
        assert html["pairs"] == sum(a or b for a, b in marked)
        assert html["pairs"] == summary["corpora"][name]["noise"]["html"]
        injected += html["pairs"]
    assert injected == summary["noise"]["html"] > 50
    assert report["total"]["html"]["en_lines"] > 0 and report["total"]["html"]["de_lines"] > 0
    assert report["dev"]["html"]["pairs"] == report["test"]["html"]["pairs"] == 0
    assert report["dev"]["lines"] == dcfg.dev_pairs and report["test"]["lines"] == dcfg.test_pairs
    tag_or_entity = re.compile(r"</?[A-Za-z][^>]*>|&#?[A-Za-z0-9]+;")
    assert kept and not any(tag_or_entity.search(s) for s in kept)

    off, kept_off = run(CleanConfig(strip_html=False), "off")
    assert off["total"]["html"] == {"en_lines": 0, "de_lines": 0, "pairs": 0}
    assert sum(bool(tag_or_entity.search(s)) for s in kept_off) > 50


def test_paper_recipe_keeps_every_pair_but_empty_ones(tmp_path):
    # recipe: paper is the paper's data handling in one setting: what the filtered recipe
    # drops (too long, bad ratio, copies, wrong language, dev/test overlap, duplicates) and
    # the text it rewrites (HTML, controls, NFC) all stay; only empty pairs go, and
    # whitespace is collapsed.
    long = (" ".join(["word"] * 300), " ".join(["Wort"] * 300))
    pairs = [
        GOOD,
        long,
        ("one", "eins zwei drei vier fünf sechs"),  # ratio
        ("Berlin", "Berlin"),  # copy
        ("test source one here", "anders"),  # in the test set
        GOOD,  # duplicate
        ("a <b>bold</b> &amp; Cafe\u0301", "ein\x01  fetter"),  # HTML, NFC, control
        ("", "leer"),  # empty side
    ]
    strict = CleanConfig(lang_filter=True)
    paper = CleanConfig(recipe="paper", lang_filter=True, max_words=5, dedup=True)
    _, filtered, _ = run_clean(tmp_path / "f", strict, corpora={"c": pairs})
    report, kept, _ = run_clean(tmp_path / "p", paper, corpora={"c": pairs})
    assert filtered == [GOOD]
    assert kept == [
        GOOD,
        long,
        ("one", "eins zwei drei vier fünf sechs"),
        ("Berlin", "Berlin"),
        ("test source one here", "anders"),
        GOOD,
        ("a <b>bold</b> &amp; Cafe\u0301", "ein\x01 fetter"),
    ]
    assert report["total"]["dropped"] == dict.fromkeys(FILTERS, 0) | {"empty": 1}
    assert cl.effective_config(paper) == CleanConfig(
        **{**vars(paper), **cl.PAPER_RECIPE}
    )  # the documented values
    md = (tmp_path / "p" / "reports/data.md").read_text()
    assert "recipe=paper" in md and "dedup=False" in md
