"""Training throughput: aiayn's Transformer against two peers, side by side on this machine.

One training step = forward + label-smoothed cross-entropy + backward + Adam step, fp32,
on the same token batch for every model. Peers, built to the same dimensions:

- Hugging Face ``transformers`` ``MarianMTModel`` (from ``MarianConfig``, no download): a
  post-norm, sinusoidal-position, tied-embedding Transformer, SDPA attention;
- ``torch.nn.Transformer`` (post-norm, batch_first) with aiayn's embeddings, positional
  encodings and tied output projection around it (nn.Transformer adds a final LayerNorm to
  each stack that the paper's post-norm model does not have).

aiayn runs as the trainer runs it, with its own CPU dropout (:func:`aiayn.model.dropout`,
16-bit uniforms instead of one Bernoulli draw per element); the peers use ``F.dropout``.
Every model gets the same optimizer (Adam, betas 0.9/0.98, eps 1e-9, ``fused`` where torch
has it) and the same loss. Models alternate step by step (the order rotates each round),
so load from other processes hits all of them alike. Figures: target tokens/s (non-padding
target tokens per second) per model for the demo and the base dimensions, ratios to each
peer, the measured fp32 matrix-multiply rate of this CPU and aiayn's model FLOPs
utilisation against it (FLOPs from :func:`aiayn.model_info.train_flops`).

Run alone: ``python -m bench.bench_train [--quick]`` prints the figures as JSON.
"""

from __future__ import annotations

import functools
import statistics
import time

PEERS = ("marian", "nn.Transformer")


def _stats(xs: list[float]) -> dict:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


# ----------------------------------------------------------------------------- batch


def make_batch(vocab_size: int, max_tokens: int, seq_len: int, seed: int = 0):
    """A padded token batch like the trainer's: B = max_tokens // seq_len sentences whose
    source and target lengths are drawn from [0.7 seq_len, seq_len], padded with 0.

    Returns src (B, S), tgt_in (B, T), tgt_out (B, T) int64."""
    import torch

    g = torch.Generator().manual_seed(seed)
    B = max(1, max_tokens // seq_len)
    lo = max(2, int(0.7 * seq_len))

    def side(n_extra: int):
        lens = torch.randint(lo, seq_len + 1, (B,), generator=g)
        ids = torch.randint(4, vocab_size, (B, seq_len + n_extra), generator=g)
        pos = torch.arange(seq_len + n_extra)[None, :]
        return ids.masked_fill(pos >= (lens[:, None] + n_extra), 0), lens

    src, _ = side(0)
    tgt, _ = side(1)  # <s> y_1 .. y_n </s> squeezed: tgt_in = tgt[:, :-1], tgt_out = tgt[:, 1:]
    tgt[:, 0] = 1
    return src, tgt[:, :-1].contiguous(), tgt[:, 1:].contiguous()


# ----------------------------------------------------------------------------- models


def build_aiayn(cfg, vocab_size: int):
    from aiayn.model import Transformer

    return Transformer(cfg, vocab_size)


def marian_config(cfg, vocab_size: int, **overrides):
    """A MarianConfig with ``cfg``'s dimensions and dropouts (post-norm, ReLU, sinusoidal
    positions, scaled and tied embeddings) and aiayn's special ids; ``overrides`` on top.
    The exporter's config (``aiayn export``) with the norm forced to post: the peer is
    Marian whatever aiayn's own norm is."""
    import dataclasses

    from aiayn.export import hf_config

    return hf_config(dataclasses.replace(cfg, norm="post"), vocab_size, **overrides)


def build_marian(cfg, vocab_size: int):
    """MarianMTModel with the same dimensions (post-norm, ReLU, sinusoidal, tied, SDPA)."""
    from transformers import MarianMTModel

    mc = marian_config(cfg, vocab_size)
    model = MarianMTModel._from_config(mc, attn_implementation="sdpa")
    return _peer_classes()[0](model)


def build_torch(cfg, vocab_size: int):
    """torch.nn.Transformer with aiayn's embeddings and output projection."""
    return _peer_classes()[1](cfg, vocab_size)


@functools.cache
def _peer_classes():
    """The two peer wrappers (defined lazily: torch is imported only when measuring)."""
    import torch.nn as nn
    import torch.nn.functional as F

    from aiayn.model import sinusoid_table
    from aiayn.vocab import PAD

    class MarianAdapter(nn.Module):
        """(src, tgt_in) -> logits, like aiayn's forward."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, src, tgt_in):
            return self.model(
                input_ids=src, attention_mask=src.ne(PAD), decoder_input_ids=tgt_in
            ).logits

    class TorchTransformer(nn.Module):
        """nn.Transformer with aiayn's scaled tied embeddings, sinusoids and output projection."""

        def __init__(self, cfg, vocab_size: int):
            super().__init__()
            D = cfg.d_model
            self.embed = nn.Embedding(vocab_size, D, padding_idx=PAD)
            nn.init.normal_(self.embed.weight, std=D**-0.5)
            self.register_buffer("positions", sinusoid_table(cfg.max_positions, D), False)
            self.scale = D**0.5
            self.drop = nn.Dropout(cfg.dropout)
            self.core = nn.Transformer(
                d_model=D,
                nhead=cfg.n_heads,
                num_encoder_layers=cfg.encoder_layers,
                num_decoder_layers=cfg.decoder_layers,
                dim_feedforward=cfg.d_ff,
                dropout=cfg.dropout,
                batch_first=True,
                norm_first=cfg.norm == "pre",
            )

        def _embed(self, tokens):
            return self.drop(self.embed(tokens) * self.scale + self.positions[: tokens.size(1)])

        def forward(self, src, tgt_in):
            src_pad = src.eq(PAD)
            causal = nn.Transformer.generate_square_subsequent_mask(tgt_in.size(1))
            h = self.core(
                self._embed(src),
                self._embed(tgt_in),
                tgt_mask=causal,
                src_key_padding_mask=src_pad,
                memory_key_padding_mask=src_pad,
                tgt_is_causal=True,
            )
            return F.linear(h, self.embed.weight)

    return MarianAdapter, TorchTransformer


BUILDERS = {"aiayn": build_aiayn, "marian": build_marian, "nn.Transformer": build_torch}


# ----------------------------------------------------------------------------- timing


def make_step(model, vocab_size: int, batch):
    """A closure running one training step on ``batch``; returns its loss."""
    import torch
    import torch.nn.functional as F

    params = [p for p in model.parameters() if p.requires_grad]
    kw = dict(lr=1e-4, betas=(0.9, 0.98), eps=1e-9)
    try:
        opt = torch.optim.Adam(params, fused=True, **kw)
    except (RuntimeError, TypeError):
        opt = torch.optim.Adam(params, **kw)
    src, tgt_in, tgt_out = batch
    model.train()

    def step() -> float:
        logits = model(src, tgt_in)  # (B, T, V)
        loss = F.cross_entropy(
            logits.view(-1, vocab_size), tgt_out.view(-1), ignore_index=0, label_smoothing=0.1
        )
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    return step


def matmul_rate(n: int = 1024, repeats: int = 7) -> dict:
    """Measured fp32 matrix-multiply rate of this CPU in GFLOP/s (n x n @ n x n)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    torch.mm(a, b, out=out)
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b, out=out)
        rates.append(4 * 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return _stats(rates)


def measure(cfg, vocab_size: int, max_tokens: int, seq_len: int, warmup: int, rounds: int):
    """Target tokens/s of every model, alternating; returns ({name: [tok/s]}, batch)."""
    import torch

    from aiayn.vocab import PAD

    torch.manual_seed(0)
    batch = make_batch(vocab_size, max_tokens, seq_len)
    n_tgt = int(batch[2].ne(PAD).sum())
    steps = {
        name: make_step(build(cfg, vocab_size), vocab_size, batch)
        for name, build in BUILDERS.items()
    }
    names = list(steps)
    for _ in range(warmup):
        for name in names:
            steps[name]()
    rates: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t = time.perf_counter()
            steps[name]()
            rates[name].append(n_tgt / (time.perf_counter() - t))
    return rates, batch


def run(quick: bool, tiny: bool = False) -> list[dict]:
    """The figures (see the module docstring); ``tiny``: demo dims only, a 1k vocabulary
    and a 256-token batch (the unit test)."""
    import torch

    from aiayn.model import PRESETS
    from aiayn.model_info import train_flops
    from aiayn.vocab import PAD
    from bench.report import paired_stats

    # (label, preset, vocab, max_tokens, seq_len, warmup, rounds). Quick keeps batches of
    # hundreds of target tokens (smaller ones measure per-op overhead, not the model) and 7
    # rounds, so that a median and a per-round spread mean something.
    if tiny:
        cases = [("demo", "demo", 1000, 256, 16, 1, 2)]
    elif quick:
        cases = [("demo", "demo", 3000, 1024, 32, 1, 7), ("base", "base", 37000, 512, 32, 1, 7)]
    else:
        cases = [("demo", "demo", 3000, 2048, 32, 2, 9), ("base", "base", 37000, 1024, 32, 1, 5)]
    threads = torch.get_num_threads()
    mm = matmul_rate(repeats=3 if quick or tiny else 9)
    figures = [
        {
            "name": "fp32 matmul rate (1024^3)",
            "unit": "GFLOP/s",
            "aiayn": mm,
            "peer": None,
            "peer_name": None,
            "ratio": None,
            "ratio_meaning": "",
            "notes": f"torch.mm, {threads} threads; the peak for MFU below",
            "precision": "fp32",
        }
    ]
    for label, preset, vocab, max_tokens, seq_len, warmup, rounds in cases:
        cfg = PRESETS[preset]
        rates, (src, tgt_in, tgt_out) = measure(cfg, vocab, max_tokens, seq_len, warmup, rounds)
        n_src, n_tgt = int(src.ne(PAD).sum()), int(tgt_out.ne(PAD).sum())
        batch_note = (
            f"{label} dims (N={cfg.encoder_layers}, d_model={cfg.d_model}, d_ff={cfg.d_ff}, "
            f"h={cfg.n_heads}), V={vocab}, batch {src.size(0)}x{src.size(1)} "
            f"({n_tgt} target tokens), fp32, {threads} threads, {rounds} alternating rounds"
        )
        ours = _stats(rates["aiayn"])
        fastest = max(PEERS, key=lambda p: statistics.median(rates[p]))
        for peer in PEERS:
            theirs = _stats(rates[peer])
            figures.append(
                {
                    "name": f"train tokens/s {label}: aiayn vs {peer}",
                    "unit": "target tokens/s",
                    "aiayn": ours,
                    "peer": theirs,
                    "peer_name": peer,
                    "ratio": ours["median"] / theirs["median"],
                    "paired": paired_stats(rates["aiayn"], rates[peer]),
                    "ratio_meaning": "aiayn / peer target tokens per second (>1: aiayn faster; "
                    "goal >= 1.2 against the faster peer)",
                    "notes": batch_note + ("; the faster peer" if peer == fastest else ""),
                    "precision": "fp32",
                }
            )
        flops_per_step = train_flops(cfg, vocab, n_src, n_tgt, src.size(1), tgt_in.size(1))
        step_rates = [r / n_tgt * flops_per_step / 1e9 for r in rates["aiayn"]]
        figures.append(
            {
                "name": f"model FLOPs utilisation {label}",
                "unit": "fraction of measured fp32 matmul rate",
                "aiayn": {k: v / mm["median"] for k, v in _stats(step_rates).items()},
                "peer": None,
                "peer_name": None,
                "ratio": None,
                "ratio_meaning": "",
                "precision": "fp32",
                "notes": f"{flops_per_step / 1e9:.2f} GFLOP per step "
                f"(aiayn.model_info.train_flops) / step time / {mm['median']:.0f} GFLOP/s",
            }
        )
    return figures


if __name__ == "__main__":
    from bench.report import run_alone

    run_alone(run, __doc__)
