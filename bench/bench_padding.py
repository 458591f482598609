"""Padding waste of token-budget batches: aiayn's length-sorted batches against batches of
random sentences under the same budget, on the demo and on a WMT-like length distribution.

Waste = padded positions / all positions of the padded batches, both sides:
``sum(B*S + B*T - real tokens) / sum(B*S + B*T)``. Lengths are real BPE token counts
(EOS included) from the real tokenize and shard code:

- demo: the clean demo training pairs (``aiayn.data.demo.generate_pairs``, profile
  ``demo``, seed and size of ``params.yaml``), the demo BPE size, ``shard.max_tokens_per_side``
  and budget ``train.max_tokens`` of ``params.yaml``;
- wmt: ``generate_pairs(..., profile="wmt")`` (WMT14 EN-DE line lengths: mean ~23 words, a
  long tail), 1M pairs (quick: 20k; the waste only falls with more pairs), a 4k BPE (the
  demo lexicon of ~480 lemmas cannot fill much more), 256 tokens per side, budget 4096
  (the paper's per-GPU micro-batch, ``TrainConfig.max_tokens``).

aiayn: :class:`aiayn.batching.TokenBatchSampler`'s batches (fixed; the per-epoch shuffle
only reorders them). Peer: the same greedy budget cut over a random order (a loader that
does not sort), 3 seeds. Corpora and shards are cached under ``.cache/bench/padding-*``.

Run alone: ``python -m bench.bench_padding [--quick]``.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# AIAYN_BENCH_CACHE moves the generated corpora (the unit test uses a temporary folder).
CACHE = Path(os.environ.get("AIAYN_BENCH_CACHE") or ROOT / ".cache" / "bench")
WMT_BPE = 4000


def _stats(xs: list[float]) -> dict:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def waste(batches: list[np.ndarray], src: np.ndarray, tgt: np.ndarray) -> float:
    """Padded share of all positions of the padded (B, S) and (B, T) batches."""
    real = padded = 0
    for b in batches:
        s, t = src[b], tgt[b]
        real += int(s.sum() + t.sum())
        padded += len(b) * int(s.max() + t.max())
    return 1.0 - real / padded


def random_batches(src: np.ndarray, tgt: np.ndarray, max_tokens: int, seed: int) -> list:
    """The peer: random order, cut greedily under ``len * max(max src, max tgt) <= budget``."""
    order = np.random.default_rng(seed).permutation(len(src))
    cost = np.maximum(src, tgt)[order].tolist()
    batches, cur, longest = [], [], 0
    for i, x in zip(order.tolist(), cost, strict=True):
        if cur and (len(cur) + 1) * max(longest, x) > max_tokens:
            batches.append(np.array(cur))
            cur, longest = [], 0
        cur.append(i)
        longest = max(longest, x)
    batches.append(np.array(cur))
    return batches


def shard_lengths(
    name: str, pairs, vocab: int, max_side: int, dev_test: int = 50
) -> tuple[np.ndarray, np.ndarray, float]:
    """Tokenize + shard ``pairs`` (an iterable of (en, de)) once, cached; (src, tgt lens,
    tokens per English word)."""
    from aiayn.config import ShardConfig, TokenizerConfig
    from aiayn.dataset import ShardDataset
    from aiayn.shard import build_shards
    from aiayn.tokenizer import train_tokenizer

    root = CACHE / f"padding-{name}"
    if not (root / "shards" / "index.json").exists():
        clean = root / "clean"
        clean.mkdir(parents=True, exist_ok=True)
        en_words = 0
        with (
            open(clean / "train.en", "w", encoding="utf-8") as fe,
            open(clean / "train.de", "w", encoding="utf-8") as fd,
        ):
            kept = []
            for en, de in pairs:
                fe.write(en + "\n")
                fd.write(de + "\n")
                en_words += len(en.split())
                if len(kept) < 2 * dev_test:
                    kept.append((en, de))
        for split, part in (("dev", kept[:dev_test]), ("test", kept[dev_test:])):
            for k, lang in enumerate(("en", "de")):
                text = "".join(p[k] + "\n" for p in part)
                (clean / f"{split}.{lang}").write_text(text, encoding="utf-8")
        tok = root / "tokenizer.json"
        train_tokenizer(TokenizerConfig(vocab, 2, 0), clean, tok, root / "tokenizer_report.json")
        build_shards(ShardConfig(max_side, 0), clean, tok, root / "shards", root / "shards.json")
        (root / "words.json").write_text(json.dumps({"en_words": en_words}))
    ds = ShardDataset(root / "shards", "train")
    en_words = json.loads((root / "words.json").read_text())["en_words"]
    n_src_tok = int(ds.src_lens.sum()) - len(ds)  # without EOS
    return ds.src_lens, ds.tgt_lens, n_src_tok / max(en_words, 1)


def figure(name: str, src, tgt, max_tokens: int, note: str) -> dict:
    from aiayn.batching import TokenBatchSampler

    ours = waste(TokenBatchSampler(src, tgt, max_tokens, seed=0).batches, src, tgt)
    peer = [waste(random_batches(src, tgt, max_tokens, seed), src, tgt) for seed in range(3)]
    return {
        "name": f"padding waste, {name}",
        "unit": "fraction of batch positions",
        "aiayn": _stats([ours]),
        "peer": _stats(peer),
        "peer_name": "random sentence batches, same budget",
        "ratio": statistics.median(peer) / ours if ours else None,
        "ratio_meaning": "peer waste / aiayn waste (higher: aiayn wastes less)",
        "notes": f"{note}; budget {max_tokens} padded tokens per side; target <= 0.05",
    }


def run(quick: bool, tiny: bool = False) -> list[dict]:
    """The figures (module doc); ``tiny``: 2k demo and 3k wmt pairs, 500-token BPEs (the
    unit test)."""
    from aiayn.config import load_params
    from aiayn.data.demo import generate_pairs

    p = load_params(ROOT / "params.yaml")
    n_demo = 2_000 if tiny else p.data.demo.train_pairs
    demo_bpe = 500 if tiny else p.tokenizer.vocab_size
    src, tgt, tpw = shard_lengths(
        f"demo-{n_demo}-{p.data.demo.seed}-{demo_bpe}",
        generate_pairs(n_demo, p.data.demo.seed, "demo"),
        demo_bpe,
        p.shard.max_tokens_per_side,
    )
    figures = [
        figure(
            "demo",
            src,
            tgt,
            p.train.max_tokens,
            f"{len(src):,} demo pairs, BPE {demo_bpe}, "
            f"mean src {src.mean():.1f} tokens, {tpw:.2f} tokens/word",
        )
    ]
    n_wmt = 3_000 if tiny else 20_000 if quick else 1_000_000
    wmt_bpe = 500 if tiny else WMT_BPE
    src, tgt, tpw = shard_lengths(
        f"wmt-{n_wmt}-{wmt_bpe}", generate_pairs(n_wmt, 1, "wmt"), wmt_bpe, 256
    )
    figures.append(
        figure(
            "WMT-like lengths",
            src,
            tgt,
            4096,
            f"{len(src):,} wmt-profile pairs, BPE {wmt_bpe}, mean src {src.mean():.1f} tokens "
            f"(p99 {np.percentile(src, 99):.0f}), {tpw:.2f} tokens/word",
        )
    )
    return figures


if __name__ == "__main__":
    from bench.report import run_alone

    run_alone(run, __doc__)
