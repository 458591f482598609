"""Read the token-id shards written by :mod:`aiayn.shard`, memory-mapped.

>>> ds = ShardDataset("data/shards", "train", tokenizer="data/tokenizer/tokenizer.json")
>>> len(ds), ds.src_lens[:3], ds[0]     # (n,), int64 lengths with EOS, (src, tgt) arrays

Opening a split checks it against ``index.json`` (counts, token totals, dtype, that every
sequence ends with EOS and every id is below the vocabulary size: vectorised, a fraction of a
second for WMT14); ``verify=True`` (what training uses) also checks each file's sha256, so
a single changed id is caught. Passing the tokenizer checks it is the one the shards were
built with. Any mismatch is a DataError.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from aiayn.errors import DataError, MissingInputError
from aiayn.tokenizer import BpeTokenizer
from aiayn.vocab import EOS

FORMAT = 1  # version of the shard format written by aiayn.shard (see its module doc)
INDEX = "index.json"


def shard_files(split: str) -> dict[str, str]:
    """File names of one split, by role."""
    return {
        "src": f"{split}.src.npy",
        "tgt": f"{split}.tgt.npy",
        "src_lens": f"{split}.src_lens.npy",
        "tgt_lens": f"{split}.tgt_lens.npy",
        "lines": f"{split}.lines.npy",
    }


def length_order(src_lens: np.ndarray, tgt_lens: np.ndarray) -> np.ndarray:
    """Indices of pairs sorted so that neighbours have close source *and* target lengths.

    Primary key: ``m = max(src len, tgt len)`` (what a pair costs in a token-budget batch).
    Within one ``m``, by ``d = tgt len - src len``, ascending for even ``m`` and descending
    for odd ``m`` (a "snake": the last pair of one group is next to the first of the next),
    then by index. Deterministic and stable; fewer padded tokens than sorting by (tgt, src).
    """
    s = np.asarray(src_lens, dtype=np.int64)
    t = np.asarray(tgt_lens, dtype=np.int64)
    m = np.maximum(s, t)
    d = t - s
    return np.lexsort((np.arange(len(s)), np.where(m % 2 == 0, d, -d), m))


def read_index(shard_dir: str | os.PathLike) -> dict[str, Any]:
    """``index.json`` of a shard folder; a missing, malformed or foreign one is an error."""
    path = Path(shard_dir) / INDEX
    if not path.is_file():
        raise MissingInputError(f"missing input {path} (run `dvc repro shard` first)")
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not a valid shard index ({e})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        got = index.get("format") if isinstance(index, dict) else None
        raise DataError(f"{path}: shard format {got!r}, expected {FORMAT}: rerun `dvc repro shard`")
    return index


def check_tokenizer(
    shard_dir: str | os.PathLike, tokenizer: str | os.PathLike | BpeTokenizer
) -> BpeTokenizer:
    """Load (if a path) and return ``tokenizer``; DataError unless the shards were built with it."""
    from aiayn.tokenizer import check_matches, load_tokenizer

    bpe = tokenizer if isinstance(tokenizer, BpeTokenizer) else load_tokenizer(tokenizer)
    index = read_index(shard_dir)
    check_matches(
        bpe,
        vocab_size=index["vocab_size"],
        sha256=index["tokenizer_sha256"],
        where=Path(shard_dir) / INDEX,
    )
    return bpe


class ShardDataset:
    """One split of the shards: ``ds[i] -> (src, tgt)`` int64 arrays, each ending with EOS.

    Attributes: ``src_lens``, ``tgt_lens`` (n,) int64 lengths with EOS; ``lines`` (n,) line
    numbers in the clean text; ``src_tokens``, ``tgt_tokens`` the flat memory-mapped ids;
    ``src_offsets``, ``tgt_offsets`` (n + 1,) int64; ``vocab_size``; ``tokenizer_sha256``;
    ``length_sorted`` (train: :func:`aiayn.shard.length_order`; dev/test: input order).
    """

    def __init__(
        self,
        shard_dir: str | os.PathLike,
        split: str,
        *,
        tokenizer: str | os.PathLike | BpeTokenizer | None = None,
        verify: bool = False,
    ):
        self.dir = Path(shard_dir)
        self.split = split
        self.index = read_index(self.dir)
        where = self.dir / INDEX
        splits = self.index.get("splits", {})
        if split not in splits:
            raise DataError(f"{where} has splits {', '.join(splits)}; no {split!r}")
        meta = splits[split]
        self.meta = meta
        self.vocab_size: int = self.index["vocab_size"]
        self.tokenizer_sha256: str = self.index["tokenizer_sha256"]
        self.length_sorted: bool = bool(meta["length_sorted"])
        if tokenizer is not None:
            check_tokenizer(self.dir, tokenizer)
        files = shard_files(split)
        if verify:
            self._verify_sha256(files, meta["sha256"])
        n = meta["pairs"]
        dtype = np.dtype(self.index["dtype"])
        self.src_tokens = self._load(files["src"], mmap=True, shape=(meta["src_tokens"],), dt=dtype)
        self.tgt_tokens = self._load(files["tgt"], mmap=True, shape=(meta["tgt_tokens"],), dt=dtype)
        self.src_lens = self._load(files["src_lens"], shape=(n,)).astype(np.int64)
        self.tgt_lens = self._load(files["tgt_lens"], shape=(n,)).astype(np.int64)
        self.lines = self._load(files["lines"], shape=(n,))
        self.src_offsets = _offsets(self.src_lens)
        self.tgt_offsets = _offsets(self.tgt_lens)
        for side, lens, toks, offs in (
            ("src", self.src_lens, self.src_tokens, self.src_offsets),
            ("tgt", self.tgt_lens, self.tgt_tokens, self.tgt_offsets),
        ):
            if n and lens.min() < 1:
                raise DataError(f"{self.dir / files[side + '_lens']}: a sequence has length < 1")
            if offs[-1] != len(toks):
                raise DataError(
                    f"{self.dir / files[side]}: {len(toks)} tokens but the lengths add up to "
                    f"{offs[-1]}: shards are inconsistent, rerun `dvc repro shard`"
                )
            if n and not np.all(toks[offs[1:] - 1] == EOS):
                raise DataError(
                    f"{self.dir / files[side]}: a sequence does not end with EOS ({EOS}): "
                    "shards are inconsistent, rerun `dvc repro shard`"
                )
            if len(toks) and int(toks.max()) >= self.vocab_size:
                at = int(np.argmax(toks >= self.vocab_size))
                raise DataError(
                    f"{self.dir / files[side]}: token id {int(toks[at])} at position {at:,} is "
                    f"not below the vocabulary size {self.vocab_size} of {where}: shards are "
                    "corrupt, rerun `dvc repro shard`"
                )

    def _load(
        self, name: str, *, shape: tuple[int, ...], mmap: bool = False, dt: np.dtype | None = None
    ) -> np.ndarray:
        path = self.dir / name
        if not path.is_file():
            raise DataError(f"missing shard file {path}: rerun `dvc repro shard`")
        try:
            a = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise DataError(f"{path}: truncated or corrupt shard ({msg})") from None
        if a.shape != shape or (dt is not None and a.dtype != dt):
            raise DataError(
                f"{path}: shape {a.shape} dtype {a.dtype}, but {self.dir / INDEX} says "
                f"{shape}{f' {dt}' if dt is not None else ''}: rerun `dvc repro shard`"
            )
        return a

    def _verify_sha256(self, files: dict[str, str], want: dict[str, str]) -> None:
        from aiayn.fsio import sha256_file

        for name in files.values():
            path = self.dir / name
            if not path.is_file():
                raise DataError(f"missing shard file {path}: rerun `dvc repro shard`")
            if sha256_file(path) != want.get(name):
                raise DataError(
                    f"{path}: sha256 differs from the one in {self.dir / INDEX}: the file "
                    "changed after it was written (corrupt?); rerun `dvc repro shard`"
                )

    def __len__(self) -> int:
        return len(self.src_lens)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(src (S,), tgt (T,)) int64 ids of pair ``i``, EOS last."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"pair {i} out of range for {self.split} ({n} pairs)")
        i %= n
        src = self.src_tokens[self.src_offsets[i] : self.src_offsets[i + 1]]
        tgt = self.tgt_tokens[self.tgt_offsets[i] : self.tgt_offsets[i + 1]]
        return src.astype(np.int64), tgt.astype(np.int64)

    def padded(self, side: str, indices: np.ndarray, pad: int, width: int | None = None):
        """Sequences ``indices`` of ``side`` ("src"/"tgt") as (B, L) int64, right-padded.

        Also returns their lengths (B,). One vectorised gather from the memory map; L is the
        longest length unless ``width`` is given.
        """
        indices = np.asarray(indices, dtype=np.int64)
        if side == "src":
            toks, offs, all_lens = self.src_tokens, self.src_offsets, self.src_lens
        else:
            toks, offs, all_lens = self.tgt_tokens, self.tgt_offsets, self.tgt_lens
        lens = all_lens[indices]  # (B,)
        width = int(lens.max()) if width is None else width
        out = np.full((len(indices), width), pad, dtype=np.int64)  # (B, L)
        mask = np.arange(width) < lens[:, None]  # (B, L)
        starts = offs[indices]
        if len(indices) > 1 and np.all(np.diff(indices) == 1):  # contiguous: one slice
            out[mask] = toks[starts[0] : starts[-1] + lens[-1]]
        else:
            total = int(lens.sum())
            src_pos = np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(total)
            out[mask] = toks[src_pos]
        return out, lens


def _offsets(lens: np.ndarray) -> np.ndarray:
    out = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(lens, out=out[1:])
    return out
