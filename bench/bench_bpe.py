"""BPE training time: aiayn's tokenize (Hugging Face ``tokenizers``) against subword-nmt's
``learn_bpe`` (the tool of fairseq's WMT14 recipe), side by side on the same sample.

Sample: 200k pairs (quick: 2k) of the WMT14-shaped synthetic text of
:mod:`bench.bench_shard` (large Zipfian vocabularies; cached under ``.cache/bench``). Both learn one joint
English+German BPE with the same number of merges: aiayn's 37k vocabulary is 4 special
tokens + 256 bytes + 36,740 merges (quick: 1k vocabulary, 740 merges), and subword-nmt
gets ``num_symbols`` = that many merges, ``min_frequency`` 2, on the concatenated text.
aiayn's time is :func:`aiayn.tokenizer.train_tokenizer` as the stage runs it (reading the
files, training, saving, and encoding dev/test for the report), subword-nmt's includes
writing its codes file (which the encoding figure below then uses); ``tokenizers`` uses every
core, subword-nmt one. Rounds alternate aiayn, subword-nmt (quick: 3 rounds, full: 2).

Encoding throughput: the two learned models then encode the same lines (quick: the 4k
training lines; full: 100k of them), sentences per second. aiayn encodes as the shard stage
does (:meth:`aiayn.tokenizer.BpeTokenizer.encode_flat`, a fresh tokenizer each round so its
word cache starts empty); subword-nmt's ``BPE.process_line`` (its own word cache, also
fresh) is what fairseq's recipe runs before ``fairseq-preprocess``.

Run alone: ``python -m bench.bench_bpe [--quick]``.
"""

from __future__ import annotations

import itertools
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.bench_shard import CACHE, TINY_TYPES, WORD_TYPES, cached_corpus
from bench.report import paired_stats

SAMPLE_PAIRS = 200_000


def _stats(xs: list[float]) -> dict:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def time_aiayn(clean: Path, vocab: int, work: Path) -> float:
    from aiayn.config import TokenizerConfig
    from aiayn.tokenizer import train_tokenizer

    t = time.perf_counter()
    train_tokenizer(TokenizerConfig(vocab, 2, 0), clean, work / "tokenizer.json", work / "r.json")
    return time.perf_counter() - t


def time_subword_nmt(joint: Path, merges: int, codes: Path) -> float:
    """learn_bpe on ``joint``, the merges saved to ``codes`` (as aiayn's time includes saving)."""
    from subword_nmt.learn_bpe import learn_bpe

    t = time.perf_counter()
    with open(joint, encoding="utf-8") as f, open(codes, "w", encoding="utf-8") as out:
        learn_bpe(f, out, merges, min_frequency=2)
    return time.perf_counter() - t


ENCODE_LINES = 100_000


def time_aiayn_encode(model: Path, lines: list[str]) -> float:
    from aiayn.tokenizer import load_tokenizer

    bpe = load_tokenizer(model)  # fresh word cache
    t = time.perf_counter()
    bpe.encode_flat(lines)
    return time.perf_counter() - t


def time_subword_nmt_encode(codes: Path, lines: list[str]) -> float:
    from subword_nmt.apply_bpe import BPE

    with open(codes, encoding="utf-8") as f:
        bpe = BPE(f)  # fresh cache
    t = time.perf_counter()
    for line in lines:
        bpe.process_line(line)
    return time.perf_counter() - t


def run(quick: bool, tiny: bool = False) -> list[dict]:
    """The figures (module doc); ``tiny``: 2k pairs of a corpus with fewer word types (the
    one bench_shard's tiny run uses), 400-token vocabulary, one round."""
    pairs = 2_000 if quick or tiny else SAMPLE_PAIRS
    vocab = 400 if tiny else 1_000 if quick else 37_000
    merges = vocab - 4 - 256
    rounds = 1 if tiny else 3 if quick else 2
    clean = cached_corpus(pairs, types=TINY_TYPES if tiny else WORD_TYPES)
    work = Path(tempfile.mkdtemp(prefix="bench_bpe.", dir=CACHE))
    try:
        joint = work / "train.joint"
        with open(joint, "w", encoding="utf-8") as out:
            for lang in ("en", "de"):
                with open(clean / f"train.{lang}", encoding="utf-8") as f:
                    shutil.copyfileobj(f, out)
        codes = work / "codes"
        ours, peer = [], []
        for _ in range(rounds):
            ours.append(time_aiayn(clean, vocab, work))
            peer.append(time_subword_nmt(joint, merges, codes))
        with open(joint, encoding="utf-8") as f:
            lines = [line.rstrip("\n") for line in itertools.islice(f, ENCODE_LINES)]
        enc_ours, enc_peer = [], []
        for _ in range(rounds):
            enc_ours.append(len(lines) / time_aiayn_encode(work / "tokenizer.json", lines))
            enc_peer.append(len(lines) / time_subword_nmt_encode(codes, lines))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return [
        {
            "name": "BPE training time, same sample",
            "unit": "s",
            "aiayn": _stats(ours),
            "peer": _stats(peer),
            "peer_name": "subword-nmt learn_bpe",
            "ratio": statistics.median(peer) / statistics.median(ours),
            "paired": paired_stats(peer, ours),
            "ratio_meaning": "subword-nmt time / aiayn time (higher: aiayn faster)",
            "notes": f"{pairs:,} pairs x 2 sides, {merges:,} merges (vocab {vocab:,}), "
            f"min_frequency 2; tokenizers on {os.cpu_count()} cores, subword-nmt on 1; "
            f"{rounds} alternating rounds",
        },
        {
            "name": "BPE encoding throughput, same lines",
            "unit": "sentences/s",
            "aiayn": _stats(enc_ours),
            "peer": _stats(enc_peer),
            "peer_name": "subword-nmt apply_bpe",
            "ratio": statistics.median(enc_ours) / statistics.median(enc_peer),
            "paired": paired_stats(enc_ours, enc_peer),
            "ratio_meaning": "aiayn / subword-nmt sentences per second (higher: aiayn faster)",
            "notes": f"{len(lines):,} lines (both sides), the models learned above; aiayn "
            f"encode_flat (as the shard stage), subword-nmt BPE.process_line; fresh caches; "
            f"{rounds} alternating rounds",
        },
    ]


if __name__ == "__main__":
    from bench.report import run_alone

    run_alone(run, __doc__)
