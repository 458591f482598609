"""The shared byte-level BPE: lossless round trip, fixed special ids, clear errors."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiayn.config import TokenizerConfig
from aiayn.errors import ConfigError, DataError, MissingInputError
from aiayn.tokenizer import load_tokenizer, new_tokenizer, train_tokenizer
from aiayn.vocab import BOS, EOS, PAD, SPECIAL_TOKENS, UNK

ROOT = Path(__file__).resolve().parent.parent

# Words a cleaned WMT line can hold: German quotes, apostrophes, digits, compounds, Unicode.
WORDS = (
    "Haus Häuser Straßenbahn über Öl „Hallo“ »Zitat« ‚einfach‘ don't it’s l'été "
    "1.000,50 3,14 2014 -5 Bundes-Verfassungs-Gericht E-Mail-Adresse 90er-Jahre the der die "
    "und and is ist a ein naïve café Ελλάδα Москва 日本語 🙂 – — … %  &  ( ) [ ] « » "
    "</s> <pad> <s> <unk>"
).split()


def write_corpus(clean: Path, n_train: int = 3000, seed: int = 0) -> None:
    """clean/{train,dev,test}.{en,de} of random sentences over WORDS."""
    rng = random.Random(seed)
    clean.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("dev", 60), ("test", 60)):
        for lang in ("en", "de"):
            lines = [" ".join(rng.choices(WORDS, k=rng.randint(1, 25))) for _ in range(n)]
            (clean / f"{split}.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(clean dir, tokenizer path, report dict) for a small 400-token BPE."""
    d = tmp_path_factory.mktemp("tok")
    write_corpus(d / "clean")
    cfg = TokenizerConfig(vocab_size=400, min_frequency=2, max_train_lines=0)
    report = train_tokenizer(cfg, d / "clean", d / "tokenizer.json", d / "tokenizer_report.json")
    return d / "clean", d / "tokenizer.json", report


@pytest.fixture(scope="module")
def bpe(trained):
    return load_tokenizer(trained[1])


def cleaned(text: str) -> str:
    """The clean stage's normalisation (aiayn.data.clean.normalize_text, then whitespace
    collapsed and stripped as clean.collapse_whitespace does)."""
    from aiayn.config import CleanConfig
    from aiayn.data.clean import normalize_text

    text = normalize_text(text, CleanConfig())
    return re.sub(r"\s+", " ", text).strip()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=200))
def test_roundtrip_any_unicode_after_cleaning(bpe, text):
    line = cleaned(text)
    assert unicodedata.is_normalized("NFC", line)
    assert bpe.decode(bpe.encode(line)) == line


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=100))
def test_roundtrip_even_without_cleaning(bpe, text):
    """Byte-level BPE is lossless on any string: leading/double spaces, tabs, controls."""
    assert bpe.decode(bpe.encode(text)) == text


@settings(max_examples=100, deadline=None)
@given(words=st.lists(st.sampled_from(WORDS), max_size=30))
def test_roundtrip_batch_of_wmt_like_lines(bpe, words):
    lines = [" ".join(words), " ".join(reversed(words)), ""]
    assert bpe.decode_batch(bpe.encode_batch(lines)) == lines


SPACES = [" ", "  ", "\t", "\u00a0", "\u2009", "\u3000", "\u2028", "\x85", "\x1c", "\n"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(
        st.lists(
            st.one_of(st.sampled_from(WORDS), st.text(min_size=1, max_size=6)),
            max_size=12,
        ).flatmap(
            lambda ws: st.lists(st.sampled_from(SPACES), min_size=len(ws), max_size=len(ws)).map(
                lambda sp: "".join(w + s for w, s in zip(ws, sp, strict=True))
            )
        ),
        max_size=8,
    ),
    regular=st.booleans(),
)
def test_encode_batch_word_cache_equals_encode(bpe, lines, regular):
    """The word-cache path of encode_batch/encode_flat gives exactly encode's ids, for
    single-spaced lines (the cache) and any other whitespace (the fallback)."""
    if regular:
        lines = [" ".join(line.split()) for line in lines]
    want = [bpe.encode(line) for line in lines]
    assert bpe.encode_batch(lines) == want
    flat, lens = bpe.encode_flat(lines)
    assert lens.tolist() == [len(w) for w in want]
    assert flat.tolist() == [i for w in want for i in w]
    assert bpe.encode_batch(lines) == want  # again, from a warm cache


def test_special_ids_fixed_and_never_produced_by_text(bpe):
    assert (PAD, BOS, EOS, UNK) == (0, 1, 2, 3)
    assert [bpe.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3]
    line = "Er sagte „</s> <pad>“ und <unk>."
    ids = bpe.encode(line)
    assert not set(ids) & {PAD, BOS, EOS, UNK}  # literal markup is text, not specials
    assert bpe.decode(ids) == line
    # decode skips specials wherever they are; it does not stop at EOS
    assert bpe.decode([BOS, *ids, EOS, PAD, PAD]) == line
    assert bpe.decode([*ids[:3], EOS, *ids[3:]]) == line
    import numpy as np
    import torch

    assert bpe.decode(np.array(ids, dtype=np.uint16)) == line
    assert bpe.decode(torch.tensor(ids)) == line


def test_same_word_same_tokens_at_line_start_and_inside(bpe):
    a = bpe.encode("Straßenbahn")
    b = bpe.encode("die Straßenbahn")
    assert b[-len(a) :] == a


def test_report_and_vocab(trained, bpe):
    clean, path, report = trained
    assert bpe.vocab_size == 400 == report["vocab_size"]
    assert report["unk_fraction"] == {"dev": 0.0, "test": 0.0}
    assert report["roundtrip_failures"] == {"dev": 0, "test": 0}
    assert report["train_lines"] == {"en": 3000, "de": 3000}
    assert report["merges"] == 400 - 4 - 256
    for split in ("dev", "test"):
        for lang in ("en", "de"):
            assert 1.0 < report["tokens_per_word"][split][lang] < 6.0
    on_disk = json.loads((path.parent / "tokenizer_report.json").read_text())
    assert on_disk == json.loads(json.dumps(report))
    assert report["sha256"] == bpe.sha256


def test_training_is_deterministic_and_max_train_lines(tmp_path, trained):
    clean, path, _ = trained
    cfg = TokenizerConfig(vocab_size=400, min_frequency=2, max_train_lines=0)
    train_tokenizer(cfg, clean, tmp_path / "a.json", tmp_path / "ra.json")
    assert (tmp_path / "a.json").read_bytes() == path.read_bytes()
    small = TokenizerConfig(vocab_size=300, min_frequency=2, max_train_lines=500)
    rep = train_tokenizer(small, clean, tmp_path / "b.json", tmp_path / "rb.json")
    assert rep["train_lines"] == {"en": 500, "de": 500}
    assert load_tokenizer(tmp_path / "b.json").vocab_size == 300


def test_joining_lines_for_training_learns_the_same_bpe(tmp_path, monkeypatch):
    """Training joins single-spaced lines into longer texts; the BPE must not change, also
    with lines that are not single-spaced (kept apart)."""
    import aiayn.tokenizer as tokenizer_module

    write_corpus(tmp_path / "clean", n_train=1500, seed=3)
    train_en = tmp_path / "clean" / "train.en"
    odd = ["", " lead", "trail ", "two  spaces", "tab\there", "nb\u00a0sp", "  ", "x"]
    train_en.write_text(train_en.read_text() + "\n".join(odd * 300) + "\n", encoding="utf-8")
    cfg = TokenizerConfig(vocab_size=420, min_frequency=2, max_train_lines=0)
    train_tokenizer(cfg, tmp_path / "clean", tmp_path / "joined.json", tmp_path / "r1.json")
    monkeypatch.setattr(tokenizer_module, "_TRAIN_JOIN_LINES", 1)
    train_tokenizer(cfg, tmp_path / "clean", tmp_path / "plain.json", tmp_path / "r2.json")
    assert (tmp_path / "joined.json").read_bytes() == (tmp_path / "plain.json").read_bytes()


def test_unreachable_vocab_size_is_a_clear_error(tmp_path, trained):
    clean = trained[0]
    cfg = TokenizerConfig(vocab_size=50_000, min_frequency=2, max_train_lines=0)
    out = tmp_path / "tok" / "tokenizer.json"
    with pytest.raises(
        DataError, match=r"tokenizer\.vocab_size=50000 .* set tokenizer\.vocab_size <= \d+"
    ):
        train_tokenizer(cfg, clean, out, tmp_path / "r.json")
    assert not out.exists() and not (tmp_path / "r.json").exists()


def test_vocab_below_byte_alphabet_is_a_config_error(tmp_path, trained):
    with pytest.raises(ConfigError, match=r"tokenizer\.vocab_size must be >= 260 .*got 100"):
        # the section refuses itself when built (aiayn.config.Section), params.yaml or not
        cfg = TokenizerConfig(vocab_size=100, min_frequency=2, max_train_lines=0)
        train_tokenizer(cfg, trained[0], tmp_path / "t.json", tmp_path / "r.json")
    assert not (tmp_path / "t.json").exists()
    # One owner of the bound: the params loader (aiayn.config) refuses it with the line
    # number (tests/test_config.py); it is exactly the byte-level alphabet.
    from aiayn.vocab import MIN_VOCAB_SIZE, N_BYTES

    assert MIN_VOCAB_SIZE == len(SPECIAL_TOKENS) + N_BYTES == 260
    tok = train_tokenizer(
        TokenizerConfig(vocab_size=MIN_VOCAB_SIZE, min_frequency=2, max_train_lines=0),
        trained[0],
        tmp_path / "t.json",
        tmp_path / "r.json",
    )
    assert tok["vocab_size"] == MIN_VOCAB_SIZE and tok["merges"] == 0


def test_load_errors(tmp_path):
    with pytest.raises(MissingInputError, match="missing input .*nope.json"):
        load_tokenizer(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match=r"bad\.json: not a tokenizers JSON file"):
        load_tokenizer(bad)
    # a tokenizer whose special tokens sit at other ids
    from tokenizers import pre_tokenizers, trainers

    tok = new_tokenizer()
    tr = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<unk>", "<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(["ein Haus", "a house"] * 10, tr)
    other = tmp_path / "other.json"
    tok.save(str(other))
    with pytest.raises(DataError, match=r"other\.json: special tokens must be <pad>=0"):
        load_tokenizer(other)


def test_stage_before_clean_is_a_one_line_error(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "stages.tokenize", "--params", str(ROOT / "params.yaml"),
         "--clean", str(tmp_path / "clean"), "--out", str(tmp_path / "t.json"),
         "--report", str(tmp_path / "r.json")],
        capture_output=True, text=True, cwd=ROOT,  # as dvc.yaml runs it
    )  # fmt: skip
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1
    assert re.fullmatch(
        r"error: missing input .*train\.en \(run `dvc repro clean` first\)\n", r.stderr
    )
    assert not (tmp_path / "t.json").exists()
