"""Shards: byte-identical, nothing lost or duplicated, length-sorted, clear errors."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from aiayn.config import ShardConfig, TokenizerConfig
from aiayn.dataset import ShardDataset, check_tokenizer, length_order, read_index, shard_files
from aiayn.errors import DataError, MissingInputError
from aiayn.shard import build_shards, checksum, token_dtype
from aiayn.tokenizer import load_tokenizer, train_tokenizer
from aiayn.vocab import EOS

ROOT = Path(__file__).resolve().parent.parent
MAX_SIDE = 32
WORDS = "Haus „Hallo“ don't l'été 1.000,50 Bundes-Verfassungs-Gericht über the der und and 🙂 Ελλάδα".split()


def write_corpus(clean: Path, n_train: int = 1500, seed: int = 0) -> None:
    """clean/{train,dev,test}.{en,de}: random lines, some too long for MAX_SIDE, duplicates."""
    rng = random.Random(seed)
    clean.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("dev", 40), ("test", 50)):
        en = [" ".join(rng.choices(WORDS, k=rng.randint(1, 9))) for _ in range(n)]
        de = [" ".join(rng.choices(WORDS, k=rng.randint(1, 9))) for _ in range(n)]
        if split == "train":
            en[10:20], de[10:20] = en[:10], de[:10]  # duplicate pairs must stay duplicates
        (clean / f"{split}.en").write_text("\n".join(en) + "\n", encoding="utf-8")
        (clean / f"{split}.de").write_text("\n".join(de) + "\n", encoding="utf-8")


def clean_pairs(clean: Path, split: str) -> list[tuple[str, str]]:
    en = (clean / f"{split}.en").read_text(encoding="utf-8").splitlines()
    de = (clean / f"{split}.de").read_text(encoding="utf-8").splitlines()
    return list(zip(en, de, strict=True))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(root dir, clean, tokenizer path, shard dir, index)."""
    d = tmp_path_factory.mktemp("shard")
    write_corpus(d / "clean")
    train_tokenizer(
        TokenizerConfig(vocab_size=300, min_frequency=2, max_train_lines=0),
        d / "clean",
        d / "tok" / "tokenizer.json",
        d / "tokenizer_report.json",
    )
    index = build_shards(
        ShardConfig(max_tokens_per_side=MAX_SIDE, workers=0),
        d / "clean",
        d / "tok" / "tokenizer.json",
        d / "shards",
        d / "shards_report.json",
    )
    return d, d / "clean", d / "tok" / "tokenizer.json", d / "shards", index


def test_byte_identical_rebuild(built, tmp_path):
    d, clean, tok, shards, _ = built
    build_shards(ShardConfig(MAX_SIDE, 1), clean, tok, tmp_path / "again", tmp_path / "r.json")
    names = sorted(p.name for p in shards.iterdir())
    assert names == sorted(p.name for p in (tmp_path / "again").iterdir())
    assert "index.json" in names and len(names) == 1 + 3 * 5
    for name in names:
        assert (shards / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name
    assert (tmp_path / "r.json").read_bytes() == (d / "shards_report.json").read_bytes()


def test_no_pair_lost_or_duplicated(built):
    """Decoded shard pairs == clean pairs minus exactly the ones too long, as multisets."""
    _, clean, tok, shards, index = built
    bpe = load_tokenizer(tok)
    pairs = clean_pairs(clean, "train")
    n_src = [len(x) + 1 for x in bpe.encode_batch([p[0] for p in pairs])]
    n_tgt = [len(x) + 1 for x in bpe.encode_batch([p[1] for p in pairs])]
    kept = [p for p, a, b in zip(pairs, n_src, n_tgt, strict=True) if max(a, b) <= MAX_SIDE]
    dropped = len(pairs) - len(kept)
    assert 0 < dropped < len(pairs) / 2  # the corpus does exercise dropping

    ds = ShardDataset(shards, "train", tokenizer=tok, verify=True)
    decoded = []
    for i in range(len(ds)):
        src, tgt = ds[i]
        assert src[-1] == EOS and tgt[-1] == EOS
        assert src.dtype == np.int64 and EOS not in src[:-1] and EOS not in tgt[:-1]
        decoded.append((bpe.decode(src), bpe.decode(tgt)))
    assert Counter(decoded) == Counter(kept)
    meta = index["splits"]["train"]
    assert (meta["pairs"], meta["dropped_too_long"], meta["input_pairs"]) == (
        len(kept),
        dropped,
        len(pairs),
    )
    # line numbers point back at the clean text
    assert [pairs[j] for j in ds.lines] == decoded
    assert len(set(ds.lines.tolist())) == len(ds)


@pytest.mark.parametrize("split", ["dev", "test"])
def test_dev_test_keep_every_pair_in_input_order(built, split):
    _, clean, tok, shards, index = built
    bpe = load_tokenizer(tok)
    ds = ShardDataset(shards, split)
    pairs = clean_pairs(clean, split)
    assert len(ds) == len(pairs) and not ds.length_sorted
    assert ds.lines.tolist() == list(range(len(pairs)))
    assert [(bpe.decode(ds[i][0]), bpe.decode(ds[i][1])) for i in range(len(ds))] == pairs
    assert index["splits"][split]["dropped_too_long"] == 0


def test_train_length_sorted_and_index_consistent(built):
    _, _, tok, shards, index = built
    ds = ShardDataset(shards, "train")
    assert ds.length_sorted
    assert (length_order(ds.src_lens, ds.tgt_lens) == np.arange(len(ds))).all()
    m = np.maximum(ds.src_lens, ds.tgt_lens)
    assert (np.diff(m) >= 0).all() and m.max() <= MAX_SIDE
    meta = index["splits"]["train"]
    assert meta["src_tokens"] == ds.src_lens.sum() and meta["tgt_tokens"] == ds.tgt_lens.sum()
    assert sum(meta["histogram"]["src"]) == len(ds) == sum(meta["histogram"]["tgt"])
    assert index["vocab_size"] == 300 and index["dtype"] == "uint16"
    assert ds.src_tokens.dtype == np.uint16 and isinstance(ds.src_tokens, np.memmap)
    assert index["tokenizer_sha256"] == load_tokenizer(tok).sha256
    assert index["checksum"] == checksum(index)
    assert read_index(shards) == json.loads((shards / "index.json").read_text())
    with pytest.raises(IndexError):
        ds[len(ds)]
    assert [a.tolist() for a in ds[-1]] == [a.tolist() for a in ds[len(ds) - 1]]


def test_token_dtype():
    assert token_dtype(65536) == np.uint16
    assert token_dtype(65537) == np.uint32


def copy_shards(shards: Path, to: Path) -> Path:
    shutil.copytree(shards, to)
    return to


def test_truncated_shard_is_a_clear_error(built, tmp_path):
    shards = copy_shards(built[3], tmp_path / "s")
    f = shards / shard_files("train")["tgt"]
    f.write_bytes(f.read_bytes()[:-50])
    with pytest.raises(DataError, match=r"train\.tgt\.npy: truncated or corrupt shard"):
        ShardDataset(shards, "train")
    ShardDataset(shards, "dev")  # other splits still open


def test_inconsistent_lengths_are_a_clear_error(built, tmp_path):
    shards = copy_shards(built[3], tmp_path / "s")
    lens_file = shards / shard_files("train")["src_lens"]
    lens = np.load(lens_file)
    lens[0] += 1
    lens[1] -= 1  # same total, but sequence 0 no longer ends with EOS
    np.save(lens_file, lens)
    with pytest.raises(DataError, match=r"train\.src\.npy: a sequence does not end with EOS"):
        ShardDataset(shards, "train")
    with pytest.raises(DataError, match=r"train\.src_lens\.npy: sha256 differs"):
        ShardDataset(shards, "train", verify=True)


def _rewrite_ids(path: Path, change) -> None:
    """Apply ``change`` to the ids of a shard file in place (same shape and dtype)."""
    ids = np.load(path)
    change(ids)
    np.save(path, ids)


def test_out_of_vocabulary_id_is_caught_when_opening(built, tmp_path):
    """Without any sha256 check: every id is checked against the vocabulary (vectorised)."""
    shards = copy_shards(built[3], tmp_path / "s")
    f = shards / shard_files("train")["tgt"]
    _rewrite_ids(f, lambda ids: ids.__setitem__(7, 65000))
    with pytest.raises(
        DataError,
        match=r"train\.tgt\.npy: token id 65000 at position 7 is not below the vocabulary size "
        r"300 of .*index\.json: shards are corrupt, rerun `dvc repro shard`",
    ):
        ShardDataset(shards, "train")


def test_changed_in_vocabulary_ids_are_caught_by_verify(built, tmp_path):
    """40 ids changed to other valid ids: only the sha256 check can see it."""
    shards = copy_shards(built[3], tmp_path / "s")
    f = shards / shard_files("train")["src"]
    positions = np.flatnonzero(np.load(f) > 3)[:40]
    _rewrite_ids(f, lambda ids: ids.__setitem__(positions, 4 + (ids[positions] - 3) % 296))
    ShardDataset(shards, "train")  # consistent: would be trained on
    with pytest.raises(DataError, match=r"train\.src\.npy: sha256 differs .* rerun `dvc repro"):
        ShardDataset(shards, "train", verify=True)


def test_index_mismatch_is_a_clear_error(built, tmp_path):
    shards = copy_shards(built[3], tmp_path / "s")
    index = json.loads((shards / "index.json").read_text())
    index["splits"]["dev"]["pairs"] += 1
    (shards / "index.json").write_text(json.dumps(index))
    with pytest.raises(DataError, match=r"dev\.src_lens\.npy: shape \(40,\) .* says \(41,\)"):
        ShardDataset(shards, "dev")
    with pytest.raises(DataError, match="has splits dev, test, train; no 'valid'"):
        ShardDataset(shards, "valid")
    (shards / "index.json").write_text("{")
    with pytest.raises(DataError, match=r"index\.json: not a valid shard index"):
        ShardDataset(shards, "dev")
    with pytest.raises(MissingInputError, match=r"missing input .*index\.json"):
        ShardDataset(tmp_path / "none", "dev")


def test_mismatched_tokenizer_is_a_clear_error(built, tmp_path):
    _, clean, tok, shards, _ = built
    for vocab in (300, 290):  # same size trained on other lines, then another size
        cfg = TokenizerConfig(vocab_size=vocab, min_frequency=2, max_train_lines=700)
        train_tokenizer(cfg, clean, tmp_path / f"t{vocab}.json", tmp_path / "r.json")
    with pytest.raises(DataError, match=r"t300\.json \(sha256 \w+\) is not the tokenizer"):
        ShardDataset(shards, "train", tokenizer=tmp_path / "t300.json")
    with pytest.raises(DataError, match=r"t290\.json has vocab_size 290 but .* built with 300"):
        check_tokenizer(shards, tmp_path / "t290.json")
    assert check_tokenizer(shards, tok).vocab_size == 300


def test_misaligned_input_is_an_error_and_leaves_nothing(built, tmp_path):
    _, clean, tok, _, _ = built
    bad = tmp_path / "clean"
    shutil.copytree(clean, bad)
    with open(bad / "test.de", "a", encoding="utf-8") as f:
        f.write("eine Zeile zu viel\n")
    with pytest.raises(DataError, match=r"test\.en has 50 lines but .*test\.de has 51"):
        build_shards(ShardConfig(MAX_SIDE, 0), bad, tok, tmp_path / "out", tmp_path / "r.json")
    assert not (tmp_path / "out").exists() and not (tmp_path / "r.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["clean"]  # no temp folder left either


def test_stage_before_tokenize_is_a_one_line_error(built, tmp_path):
    clean = built[1]
    r = subprocess.run(
        [sys.executable, "-m", "stages.shard", "--params", str(ROOT / "params.yaml"),
         "--clean", str(clean), "--tokenizer", str(tmp_path / "tok.json"),
         "--out", str(tmp_path / "shards"), "--report", str(tmp_path / "r.json")],
        capture_output=True, text=True, cwd=ROOT,  # as dvc.yaml runs it
    )  # fmt: skip
    assert r.returncode == 1
    assert re.fullmatch(
        r"error: missing input .*tok\.json \(run `dvc repro tokenize` first\)\n", r.stderr
    )
    assert not (tmp_path / "shards").exists()
