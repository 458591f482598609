"""Tokenize + shard at WMT14 scale, and the batch loader's throughput from the shards.

Corpus: synthetic clean text with WMT14's shape, cached under
``.cache/bench/tok-<pairs>-<seed>/clean`` (``train/dev/test.{en,de}`` as the clean stage
writes them). The demo language (:mod:`aiayn.data.demo`) has a lexicon of ~480 lemmas,
far too few word types for a 37k BPE, so this generator draws words from large Zipfian
vocabularies of syllable-built pseudo-words instead (150k English, 150k German types plus
German closed and hyphenated compounds, capitalised nouns, numbers in each language's
format, apostrophes, German quotes for English ones), with log-normal line lengths of mean
~23 words (WMT14 EN-DE's) and a correlated German length.

Figures:

1. wall time of ``tokenize`` (37k BPE on both sides) + ``shard`` at WMT14 size (4.5M pairs,
   ``--full``; by default a tenth of it; quick: 40k pairs, 8k BPE), one fresh process,
   target <= 600 s at WMT14 size;
2. peak resident memory of that process (its ``VmHWM``, :func:`bench.peak_rss_bytes`;
   tokenizers uses threads, not processes), target <= 8 GB;
3. loader throughput: non-pad source + target tokens per second that :class:`BatchLoader`
   yields from the memory-mapped train shards (budget 4096, CPU tensors), target >= 1M/s;
   peer: ``torch.utils.data.DataLoader`` over the same batches with a per-pair dataset and
   a ``pad_sequence`` collate (the usual hand-written loader), alternating, 3 rounds.

Run alone: ``python -m bench.bench_shard [--quick | --full] [--pairs N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.report import paired_stats

ROOT = Path(__file__).resolve().parent.parent
# AIAYN_BENCH_CACHE moves the generated corpora (the unit test uses a temporary folder).
CACHE = Path(os.environ.get("AIAYN_BENCH_CACHE") or ROOT / ".cache" / "bench")
WMT14_PAIRS = 4_520_620
DEFAULT_PAIRS = 450_000  # without --full: a tenth of WMT14
WORD_TYPES = 150_000  # per language; the tiny corpus of the unit test uses fewer
TINY_TYPES = 10_000
DEV_PAIRS, TEST_PAIRS = 3000, 3003


def _stats(xs: list[float]) -> dict:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


# ----------------------------------------------------------------------------- corpus

_EN_SYL = (
    "a an ar as at be ca co com con de di en er es ex for ge in is it la le li lo ma me mi "
    "mo ne no of on or pa pe per pla pro re ri ro sa se si so st ta te ter ti to tra tu un "
    "ve vi wa we wi the tion ing ment ly ous al ble ness ful"
).split()
_DE_SYL = (
    "a an ar be bei da de der di ein en er es ge gen hei in ist ke keit la le lich lo ma me "
    "mi na ne nen nis re ri ro sa sch schaft se si st sta te ten ter ti tung un ung ver vor "
    "wa we zu ä ö ü ß äu ei ie ch ck"
).split()


def _vocab(rng: np.random.Generator, syl: list[str], n: int, german: bool) -> np.ndarray:
    """``n`` distinct pseudo-words, shortest first (frequent words are short, as in text)."""
    words: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        k = int(min(6, 1 + rng.poisson(1.6)))
        w = "".join(syl[i] for i in rng.integers(0, len(syl), k))
        if w not in words:
            words.add(w)
            out.append(w)
    out.sort(key=len)
    arr = np.array(out, dtype=object)
    if german:  # nouns capitalised; closed and hyphenated compounds among the rarer types
        caps = rng.random(n) < 0.3
        arr[caps] = [w[0].upper() + w[1:] for w in arr[caps]]
        rare = np.arange(n) > n // 5
        comp = rare & (rng.random(n) < 0.3)
        a, b = rng.integers(0, n // 3, (2, int(comp.sum())))
        arr[comp] = [x[0].upper() + x[1:] + y.lower() for x, y in zip(arr[a], arr[b], strict=True)]
        hyph = rare & ~comp & (rng.random(n) < 0.03)
        arr[hyph] = ["EU-" + w for w in arr[hyph]]
    else:
        poss = (np.arange(n) > n // 10) & (rng.random(n) < 0.02)
        arr[poss] = [w + "'s" for w in arr[poss]]
    return arr


def _zipf_cdf(n: int, s: float = 1.07, q: float = 2.7) -> np.ndarray:
    p = 1.0 / (np.arange(n) + q) ** s
    return np.cumsum(p / p.sum())


def _numbers(rng: np.random.Generator, n: int, german: bool) -> np.ndarray:
    ints = rng.integers(1, 100_000, n)
    out = []
    for v, kind in zip(ints, rng.integers(0, 3, n), strict=True):
        if kind == 0:
            out.append(str(v % 2030))
        elif kind == 1:
            a, b = divmod(int(v) % 1000, 10)
            out.append(f"{a},{b}" if german else f"{a}.{b}")
        else:
            out.append(f"{v:,}".replace(",", "." if german else ","))
    return np.array(out, dtype=object)


def _lines(rng, vocab, cdf, nums, lens, quote_rows, german: bool) -> list[str]:
    total = int(lens.sum())
    words = vocab[np.searchsorted(cdf, rng.random(total))]
    is_num = rng.random(total) < 0.015
    words[is_num] = nums[rng.integers(0, len(nums), int(is_num.sum()))]
    comma = rng.random(total) < 0.05
    words[comma] = words[comma] + ","
    ends = np.cumsum(lens)
    starts = ends - lens
    out = []
    for i, (a, b) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        line = " ".join(words[a:b]).rstrip(",") + "."
        line = line[0].upper() + line[1:]
        if quote_rows[i]:
            line = f"„{line}“" if german else f'"{line}"'
        out.append(line)
    return out


def write_corpus(
    clean: Path, pairs: int, seed: int = 0, block: int = 50_000, types: int = WORD_TYPES
) -> None:
    """Write ``clean/{train,dev,test}.{en,de}``: WMT14-shaped synthetic text (module doc).

    Dev and test have newstest's 3000 pairs, or 1/20 of ``pairs`` (at least 50) if fewer.
    """
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    v_en = _vocab(rng, _EN_SYL, types, german=False)
    v_de = _vocab(rng, _DE_SYL, types, german=True)
    c_en, c_de = _zipf_cdf(len(v_en)), _zipf_cdf(len(v_de))
    n_en, n_de = _numbers(rng, 5000, False), _numbers(rng, 5000, True)
    clean.mkdir(parents=True, exist_ok=True)
    n_dev, n_test = min(DEV_PAIRS, max(50, pairs // 20)), min(TEST_PAIRS, max(50, pairs // 20))
    for split, n in (("train", pairs), ("dev", n_dev), ("test", n_test)):
        with (
            open(clean / f"{split}.en", "w", encoding="utf-8") as fen,
            open(clean / f"{split}.de", "w", encoding="utf-8") as fde,
            tqdm(total=n, desc=f"corpus {split}", unit=" pairs", unit_scale=True) as bar,
        ):
            for start in range(0, n, block):
                k = min(block, n - start)
                len_en = np.clip(np.round(np.exp(rng.normal(np.log(19), 0.6, k))), 1, 250)
                len_en = len_en.astype(np.int64)
                ratio = np.exp(rng.normal(-0.05, 0.15, k))
                len_de = np.clip(np.round(len_en * ratio), 1, 250).astype(np.int64)
                quotes = rng.random(k) < 0.03
                fen.write("\n".join(_lines(rng, v_en, c_en, n_en, len_en, quotes, False)) + "\n")
                fde.write("\n".join(_lines(rng, v_de, c_de, n_de, len_de, quotes, True)) + "\n")
                bar.update(k)


def cached_corpus(pairs: int, seed: int = 0, types: int = WORD_TYPES) -> Path:
    """The clean folder of a ``pairs``-pair corpus, generated once under ``.cache/bench``
    (``types`` word types per language)."""
    tag = "" if types == WORD_TYPES else f"-v{types}"
    clean = CACHE / f"tok-{pairs}-{seed}{tag}" / "clean"
    if not (clean / "test.de").exists():
        tmp = clean.with_name("clean.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        write_corpus(tmp, pairs, seed, types=types)
        tmp.rename(clean)
    return clean


# ----------------------------------------------------------------------------- figures


def _child(clean: Path, work: Path, vocab: int) -> None:
    """Figure 1-2 body, in a fresh process: tokenize + shard, print timings as JSON."""
    from aiayn.config import ShardConfig, TokenizerConfig
    from aiayn.shard import build_shards
    from aiayn.tokenizer import train_tokenizer

    t0 = time.perf_counter()
    train_tokenizer(TokenizerConfig(vocab, 2, 0), clean, work / "tokenizer.json", work / "t.json")
    t1 = time.perf_counter()
    index = build_shards(
        ShardConfig(256, 0), clean, work / "tokenizer.json", work / "shards", work / "s.json"
    )
    t2 = time.perf_counter()
    tr = index["splits"]["train"]
    from bench import peak_rss_bytes

    print(
        json.dumps(
            {
                "peak_rss": peak_rss_bytes(),
                "tokenize_s": t1 - t0,
                "shard_s": t2 - t1,
                "pairs": tr["pairs"],
                "dropped": tr["dropped_too_long"],
                "tokens": tr["src_tokens"] + tr["tgt_tokens"],
            }
        )
    )


def tokenize_and_shard(
    pairs: int, vocab: int, types: int = WORD_TYPES
) -> tuple[dict, float, float, float, Path]:
    """Run :func:`_child` in a fresh process; (its JSON, wall s, peak RSS bytes, CPU s, the
    folder holding its ``shards``)."""
    clean = cached_corpus(pairs, types=types)
    work = clean.parent / f"work-{vocab}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    cmd = [sys.executable, "-m", "bench.bench_shard", "--child", str(clean), str(work), str(vocab)]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if r.returncode:
        raise RuntimeError(f"tokenize+shard child failed:\n{r.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    info = json.loads(r.stdout.strip().splitlines()[-1])
    # The child's own high-water mark: RUSAGE_CHILDREN's ru_maxrss would report this
    # (parent) process's size when it is larger (see bench.peak_rss_bytes).
    return info, wall, info["peak_rss"], cpu, work


class _PairDataset:
    """The peer's map-style dataset: one (src, tgt) pair of int64 tensors per item."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        import torch

        s, t = self.ds[i]
        return torch.from_numpy(s), torch.from_numpy(t)


def _peer_collate(items):
    import torch
    from torch.nn.utils.rnn import pad_sequence

    from aiayn.vocab import BOS, PAD

    src = pad_sequence([s for s, _ in items], batch_first=True, padding_value=PAD)
    tgt_out = pad_sequence([t for _, t in items], batch_first=True, padding_value=PAD)
    tgt_in = pad_sequence(
        [torch.cat([torch.tensor([BOS]), t[:-1]]) for _, t in items],
        batch_first=True,
        padding_value=PAD,
    )
    return src, tgt_in, tgt_out, int((src != PAD).sum()), int((tgt_out != PAD).sum())


def loader_throughput(shards: Path, max_batches: int, rounds: int = 3) -> tuple[list, list]:
    """Tokens/s of BatchLoader and of the peer DataLoader over the same batches."""
    import torch

    from aiayn.batching import BatchLoader, TokenBatchSampler
    from aiayn.dataset import ShardDataset

    ds = ShardDataset(shards, "train")
    ours, peer = [], []
    for r in range(rounds):
        sampler = TokenBatchSampler(ds.src_lens, ds.tgt_lens, 4096, seed=r)
        batches = sampler.epoch_batches(0)[:max_batches]
        t = time.perf_counter()
        n = 0
        for k, b in enumerate(BatchLoader(ds, sampler, epochs=1)):
            n += b.n_src_tokens + b.n_tgt_tokens
            if k + 1 == len(batches):
                break
        ours.append(n / (time.perf_counter() - t))
        dl = torch.utils.data.DataLoader(
            _PairDataset(ds), batch_sampler=[b.tolist() for b in batches], collate_fn=_peer_collate
        )
        t = time.perf_counter()
        n = sum(b[3] + b[4] for b in dl)
        peer.append(n / (time.perf_counter() - t))
    return ours, peer


def run(
    quick: bool, pairs: int | None = None, tiny: bool = False, full: bool = False
) -> list[dict]:
    """The figures (module doc). Corpus size: ``pairs`` if given, else WMT14's with ``full``,
    a tenth of it by default, 40k pairs ``quick``, 2k ``tiny`` (the unit test)."""
    if not pairs:
        pairs = 2_000 if tiny else 40_000 if quick else WMT14_PAIRS if full else DEFAULT_PAIRS
    vocab = 500 if tiny else 8000 if quick else 37_000
    rounds = 1 if tiny else 3
    info, wall, peak, cpu, work = tokenize_and_shard(
        pairs, vocab, TINY_TYPES if tiny else WORD_TYPES
    )
    where = f"{pairs:,} pairs, {vocab} BPE, {os.cpu_count()} CPUs"
    figures = [
        {
            "name": f"tokenize + shard wall time, {pairs:,} pairs",
            "unit": "s",
            "aiayn": _stats([wall]),
            "peer": None,
            "peer_name": None,
            "ratio": None,
            "ratio_meaning": "",
            "notes": f"{where}; target <= 600 s at 4.5M pairs; fresh process incl. imports; "
            f"tokenize {info['tokenize_s']:.1f} s, shard {info['shard_s']:.1f} s; "
            f"CPU time {cpu:.0f} s (wall on an idle machine is about CPU / cores); "
            f"{info['pairs']:,} train pairs kept, {info['dropped']:,} dropped (> 256 tokens)",
        },
        {
            "name": f"tokenize + shard peak memory, {pairs:,} pairs",
            "unit": "GB",
            "aiayn": _stats([peak / 1e9]),
            "peer": None,
            "peer_name": None,
            "ratio": None,
            "ratio_meaning": "",
            "notes": f"{where}; target <= 8 GB; VmHWM of the process (threads included)",
        },
    ]
    shards = work / "shards"
    max_batches = 20 if tiny else 200 if quick else 3000
    ours, peer = loader_throughput(shards, max_batches, rounds)
    figures.append(
        {
            "name": "loader throughput from memory-mapped shards",
            "unit": "tokens/s",
            "aiayn": _stats(ours),
            "peer": _stats(peer),
            "peer_name": "torch DataLoader, per-pair dataset + pad_sequence collate",
            "ratio": statistics.median(ours) / statistics.median(peer),
            "paired": paired_stats(ours, peer),
            "ratio_meaning": "aiayn / peer tokens per second (higher is better)",
            "notes": "non-pad src+tgt tokens per second, budget 4096, CPU tensors, same "
            f"batches for both, {rounds} alternating round(s); target >= 1M tokens/s",
        }
    )
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tiny", action="store_true", help="smallest sizes (the unit test)")
    ap.add_argument("--full", action="store_true", help="WMT14 size (default: a tenth)")
    ap.add_argument("--pairs", type=int, default=None, help="corpus size (overrides the above)")
    ap.add_argument("--child", nargs=3, metavar=("CLEAN", "WORK", "VOCAB"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        clean, work, vocab = args.child
        _child(Path(clean), Path(work), int(vocab))
        return
    print(json.dumps(run(args.quick, args.pairs, tiny=args.tiny, full=args.full), indent=2))


if __name__ == "__main__":
    main()
