"""BPE-encode ``data/clean`` into memory-mappable, length-sorted token-id shards.

Format of ``data/shards/`` (``FORMAT`` = 1); every array is a NumPy ``.npy`` file, so
``np.load(path, mmap_mode="r")`` maps it and the header carries dtype and shape:

``<split>.src.npy``, ``<split>.tgt.npy``
    all sequences of the split, flat, one after another (uint16 when the vocabulary has at
    most 65536 entries, else uint32). Every sequence ends with EOS.
``<split>.src_lens.npy``, ``<split>.tgt_lens.npy``
    int32 (n,): tokens per sequence, EOS included. Offsets are their cumulative sums.
``<split>.lines.npy``
    int64 (n,): the 0-based line number in ``data/clean/<split>.{en,de}`` of each pair.
``index.json``
    format, vocabulary size, dtype, tokenizer sha256, special ids, ``max_tokens_per_side``,
    and per split: pair and token counts, dropped pairs, the length histogram, the sha256 of
    each file; ``checksum`` is the sha256 over all of them.

``train`` is sorted by :func:`aiayn.dataset.length_order` (the order the batch sampler cuts batches
from, so a batch is one contiguous slice of the memory map); pairs with more than
``shard.max_tokens_per_side`` tokens on a side (EOS included) are dropped and counted.
``dev`` and ``test`` keep every pair in input order (scoring reads the clean text anyway).
Identical inputs and params give byte-identical files: no timestamps, sorted JSON keys.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aiayn import paths
from aiayn.dataset import FORMAT, INDEX, length_order, shard_files
from aiayn.errors import DataError
from aiayn.fsio import iter_lines
from aiayn.tokenizer import BpeTokenizer
from aiayn.vocab import BOS, EOS, PAD, UNK

if TYPE_CHECKING:
    from aiayn.config import ShardConfig

SIDES = ("src", "tgt")  # src = paths.SRC_LANG (en), tgt = paths.TGT_LANG (de)
HIST_BIN = 8  # tokens per length-histogram bin
CHUNK_LINES = 50_000  # lines per encode_flat call
LENGTH_SORTED = ("train",)


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits, else uint32."""
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


@dataclass
class EncodedSide:
    """One side of a split, in input order: flat ids with EOS after each line."""

    tokens: np.ndarray  # (sum(lens),) token dtype
    lens: np.ndarray  # (n,) int32, EOS included

    @property
    def offsets(self) -> np.ndarray:
        """(n + 1,) int64 start of each sequence, then the total."""
        out = np.zeros(len(self.lens) + 1, dtype=np.int64)
        np.cumsum(self.lens, out=out[1:])
        return out


def encode_with_eos(bpe: BpeTokenizer, lines: list[str], dtype: np.dtype) -> EncodedSide:
    """Encode ``lines`` (:meth:`BpeTokenizer.encode_flat`) and append EOS to each."""
    flat, n_ids = bpe.encode_flat(lines)  # (total,), (n,)
    tokens = np.full(len(flat) + len(lines), EOS, dtype=dtype)
    # token k of line r moves right by r (one EOS per earlier line)
    tokens[np.arange(len(flat)) + np.repeat(np.arange(len(lines)), n_ids)] = flat
    return EncodedSide(tokens, (n_ids + 1).astype(np.int32))


def _concat(parts: list[EncodedSide], dtype: np.dtype) -> EncodedSide:
    if not parts:
        return EncodedSide(np.zeros(0, dtype), np.zeros(0, np.int32))
    return EncodedSide(
        np.concatenate([p.tokens for p in parts]), np.concatenate([p.lens for p in parts])
    )


def encode_split(
    bpe: BpeTokenizer, src_path: Path, tgt_path: Path, dtype: np.dtype, desc: str = ""
) -> tuple[EncodedSide, EncodedSide]:
    """Encode two line-aligned files chunk by chunk; a line-count mismatch is a DataError."""
    from tqdm import tqdm

    from aiayn.fsio import count_lines

    n_src, n_tgt = count_lines(src_path), count_lines(tgt_path)
    if n_src != n_tgt:
        raise DataError(
            f"{src_path} has {n_src} lines but {tgt_path} has {n_tgt}: the sides must align"
        )
    parts: dict[str, list[EncodedSide]] = {"src": [], "tgt": []}
    src_lines, tgt_lines = iter_lines(src_path), iter_lines(tgt_path)
    with tqdm(total=n_src, desc=desc, unit=" pairs", disable=None, unit_scale=True) as bar:
        while True:
            chunk = {  # invalid UTF-8: a DataError naming the file, line and offset
                "src": list(itertools.islice(src_lines, CHUNK_LINES)),
                "tgt": list(itertools.islice(tgt_lines, CHUNK_LINES)),
            }
            if not chunk["src"]:
                break
            for side in SIDES:
                parts[side].append(encode_with_eos(bpe, chunk[side], dtype))
            bar.update(len(chunk["src"]))
    return _concat(parts["src"], dtype), _concat(parts["tgt"], dtype)


def gather(side: EncodedSide, order: np.ndarray, chunk: int = 1 << 18) -> np.ndarray:
    """The sequences ``order`` of ``side``, concatenated: (sum(lens[order]),)."""
    offsets = side.offsets
    lens = side.lens[order].astype(np.int64)
    out = np.empty(int(lens.sum()), dtype=side.tokens.dtype)
    pos = 0
    for i in range(0, len(order), chunk):
        o, n = order[i : i + chunk], lens[i : i + chunk]
        total = int(n.sum())
        starts = np.repeat(offsets[o] - (np.cumsum(n) - n), n)  # source start - dest start
        out[pos : pos + total] = side.tokens[starts + np.arange(total)]
        pos += total
    return out


def length_histogram(lens: np.ndarray, bin_width: int = HIST_BIN) -> list[int]:
    """Counts of lengths in bins ``[0, w), [w, 2w), ...`` up to the longest."""
    if len(lens) == 0:
        return []
    return np.bincount(lens // bin_width).astype(int).tolist()


def _save(path: Path, array: np.ndarray) -> str:
    """np.save ``array`` to ``path``; return the file's sha256."""
    from aiayn.fsio import sha256_file

    with open(path, "wb") as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)
    return sha256_file(path)


def build_shards(
    cfg: ShardConfig, clean: Path, tokenizer: Path, out: Path, report: Path
) -> dict[str, Any]:
    """Encode ``clean/{train,dev,test}.{en,de}`` with ``tokenizer`` into shards under ``out``.

    Writes ``out`` atomically (see the module doc for the format) and ``report`` (DVC
    metrics). Returns the index dict.
    """
    from aiayn.fsio import atomic_dir, atomic_file, require_inputs, sha256_file
    from aiayn.tokenizer import load_tokenizer

    clean, tokenizer, out, report = Path(clean), Path(tokenizer), Path(out), Path(report)
    inputs = [paths.clean_split(s, lang, clean) for s in paths.SPLITS for lang in paths.LANGS]
    require_inputs(*inputs, stage="clean")
    require_inputs(tokenizer, stage="tokenize")
    if cfg.workers:  # read by the Rust thread pool when tokenizers first goes parallel
        os.environ.setdefault("RAYON_NUM_THREADS", str(cfg.workers))
        os.environ.setdefault("RAYON_RS_NUM_CPUS", str(cfg.workers))
    bpe = load_tokenizer(tokenizer)
    dtype = token_dtype(bpe.vocab_size)
    index: dict[str, Any] = {
        "format": FORMAT,
        "vocab_size": bpe.vocab_size,
        "dtype": dtype.name,
        "tokenizer_sha256": sha256_file(tokenizer),
        "special_ids": {"pad": PAD, "bos": BOS, "eos": EOS, "unk": UNK},
        "max_tokens_per_side": cfg.max_tokens_per_side,
        "histogram_bin_width": HIST_BIN,
        "splits": {},
    }
    with atomic_dir(out) as tmp:
        for split in paths.SPLITS:
            src_path = paths.clean_split(split, paths.SRC_LANG, clean)
            tgt_path = paths.clean_split(split, paths.TGT_LANG, clean)
            src, tgt = encode_split(bpe, src_path, tgt_path, dtype, desc=f"shard {split}")
            n_in = len(src.lens)
            if split in LENGTH_SORTED:
                keep = np.flatnonzero(
                    (src.lens <= cfg.max_tokens_per_side) & (tgt.lens <= cfg.max_tokens_per_side)
                )
                order = keep[length_order(src.lens[keep], tgt.lens[keep])]
            else:
                order = np.arange(n_in, dtype=np.int64)
            arrays = {
                "src": gather(src, order),
                "tgt": gather(tgt, order),
                "src_lens": src.lens[order],
                "tgt_lens": tgt.lens[order],
                "lines": order.astype(np.int64),
            }
            del src, tgt
            files = shard_files(split)
            sha = {files[k]: _save(tmp / files[k], a) for k, a in arrays.items()}
            sl, tl = arrays["src_lens"], arrays["tgt_lens"]
            index["splits"][split] = {
                "input_pairs": n_in,
                "pairs": len(order),
                "dropped_too_long": n_in - len(order),
                "length_sorted": split in LENGTH_SORTED,
                "src_tokens": int(sl.sum()),
                "tgt_tokens": int(tl.sum()),
                "max_src_len": int(sl.max()) if len(sl) else 0,
                "max_tgt_len": int(tl.max()) if len(tl) else 0,
                "histogram": {"src": length_histogram(sl), "tgt": length_histogram(tl)},
                "files": files,
                "sha256": sha,
            }
        index["checksum"] = checksum(index)
        with open(tmp / INDEX, "w", encoding="utf-8") as f:
            json.dump(index, f, indent=1, sort_keys=True)
            f.write("\n")
    with atomic_file(report) as f:
        json.dump(shard_report(index), f, indent=2, sort_keys=True)
        f.write("\n")
    return index


def checksum(index: dict[str, Any]) -> str:
    """sha256 over every shard file's sha256, in split and file order."""
    h = hashlib.sha256()
    for split in sorted(index["splits"]):
        for name, sha in sorted(index["splits"][split]["sha256"].items()):
            h.update(f"{name} {sha}\n".encode())
    return h.hexdigest()


def shard_report(index: dict[str, Any]) -> dict[str, Any]:
    """The DVC metrics of ``reports/shards.json``: counts and mean lengths per split."""
    out: dict[str, Any] = {"vocab_size": index["vocab_size"], "dtype": index["dtype"]}
    for split, s in index["splits"].items():
        n = s["pairs"]
        out[split] = {
            "pairs": n,
            "dropped_too_long": s["dropped_too_long"],
            "dropped_fraction": (
                round(s["dropped_too_long"] / s["input_pairs"], 6) if s["input_pairs"] else 0.0
            ),
            "src_tokens": s["src_tokens"],
            "tgt_tokens": s["tgt_tokens"],
            "mean_src_len": round(s["src_tokens"] / n, 3) if n else 0.0,
            "mean_tgt_len": round(s["tgt_tokens"] / n, 3) if n else 0.0,
            "max_src_len": s["max_src_len"],
            "max_tgt_len": s["max_tgt_len"],
        }
    return out
