"""Tiny real inputs for the trainer tests: a synthetic parallel corpus, BPE, shards, params.

Built with the project's own tokenizer and shard code (``aiayn.tokenizer``, ``aiayn.shard``)
so the trainer is tested on the files the pipeline really writes.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

from aiayn.hardware import Bf16Probe

ROOT = Path(__file__).resolve().parent.parent

# What precision selection sees on two kinds of CPU (the conftest fixture cpu_bf16 installs
# one): an Intel Xeon with AMX, and an AVX2-only AMD EPYC (bf16 emulated, ~70x slower).
FAST_BF16 = Bf16Probe("AMX", 600e9, 250e9)
SLOW_BF16 = Bf16Probe(None, 0.8e9, 57e9)

WORDS = (
    "the house cat dog tree river red blue green small big old new we see go run "
    "eat read write book table chair city road car water bread milk day night"
).split()


def _translate(word: str) -> str:
    """A toy 'German': a fixed word mapping with a suffix, reversed word order."""
    return word[::-1] + "en"


def write_corpus(clean: Path, n_train: int = 400, n_dev: int = 40, seed: int = 0) -> None:
    """``clean/{train,dev,test}.{en,de}`` of random 2-8 word sentences."""
    rng = random.Random(seed)
    clean.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("dev", n_dev), ("test", n_dev)):
        en, de = [], []
        for _ in range(n):
            words = [rng.choice(WORDS) for _ in range(rng.randint(2, 8))]
            en.append(" ".join(words))
            de.append(" ".join(_translate(w) for w in reversed(words)))
        (clean / f"{split}.en").write_text("\n".join(en) + "\n", encoding="utf-8")
        (clean / f"{split}.de").write_text("\n".join(de) + "\n", encoding="utf-8")


def make_shards(root: Path, n_train: int = 400, vocab_size: int = 320) -> tuple[Path, Path]:
    """Corpus -> tokenizer -> shards under ``root``; returns (shards dir, tokenizer file)."""
    from aiayn.config import ShardConfig, TokenizerConfig
    from aiayn.shard import build_shards
    from aiayn.tokenizer import train_tokenizer

    clean = root / "clean"
    write_corpus(clean, n_train)
    tok = root / "tokenizer" / "tokenizer.json"
    train_tokenizer(
        TokenizerConfig(vocab_size=vocab_size, min_frequency=2, max_train_lines=0),
        clean,
        tok,
        root / "tokenizer.report.json",
    )
    shards = root / "shards"
    build_shards(
        ShardConfig(max_tokens_per_side=48, workers=1), clean, tok, shards, root / "shards.json"
    )
    return shards, tok


def tiny_params(model: dict | None = None, **train):
    """The repository's params.yaml with a tiny model and a short run (overrides: train.*)."""
    from aiayn.config import load_params

    p = load_params(ROOT / "params.yaml")
    m = dict(
        encoder_layers=1,
        decoder_layers=1,
        d_model=32,
        d_ff=64,
        n_heads=4,
        dropout=0.1,
        attention_dropout=0.1,
        max_positions=64,
    )
    m.update(model or {})
    t = dict(
        seed=3,
        max_steps=6,
        tokens_per_step=256,
        max_tokens=128,
        warmup_steps=4,
        lr_scale=1.0,
        save_every=2,
        save_every_minutes=0.0,
        keep_last=3,
        eval_every=3,
        log_every=1,
        precision="auto",
        device="cpu",
        threads=1,
        nproc=1,
        compile=False,
    )
    t.update(train)
    return dataclasses.replace(
        p,
        model=dataclasses.replace(p.model, **m),
        train=dataclasses.replace(p.train, **t),
        shard=dataclasses.replace(p.shard, max_tokens_per_side=48),
        average=dataclasses.replace(p.average, last=1),
    )
