"""Where one training step spends its time: aiayn against Marian, op by op.

``python -m bench.profile_step [--threads N] [--max-tokens 512] [--out FILE [--append]]``
builds the models of :mod:`bench.bench_train` (base dimensions, the paper's 37k vocabulary,
fp32, the same padded batch, the same label-smoothed loss and fused Adam), times their
training steps alternately without the profiler (target tokens/s: median, min-max), then
runs ``--steps`` steps of each under :mod:`torch.profiler` and writes a markdown section:

- the share of the step's self CPU time in each kind of op (:data:`GROUPS`: the matrix
  products ``aten::mm``/``addmm``/``bmm``, fused attention, softmax and loss, the
  optimizer, layer norm, dropout, the rest) per model;
- the ops with the most self CPU time, side by side (ms per step, share, calls).

Run it under ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`` to see an AVX2-only CPU
(the section's header names the kernels and the variables). A diagnostic, not a
benchmark: it prints the section and writes it to ``--out`` (``--append``: after what the
file holds), nothing else; ``reports/profile_step.md`` keeps the runs cited in the README.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

# Self-CPU-time groups, matched on the op name (first match wins).
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("mm/addmm/bmm", ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "mkldnn")),
    ("attention", ("attention", "sdpa", "flash")),
    ("softmax and loss", ("softmax", "nll_loss", "cross_entropy")),
    ("optimizer", ("adam", "foreach", "optimizer")),
    ("layer norm", ("layer_norm",)),
    ("dropout", ("dropout", "bernoulli", "uniform", "random", "rand")),
)
GROUP_NAMES = tuple(g for g, _ in GROUPS) + ("other",)


def group_of(op: str) -> str:
    """The group of :data:`GROUPS` an op name belongs to ('other' if none)."""
    low = op.lower()
    for group, keys in GROUPS:
        if any(k in low for k in keys):
            return group
    return "other"


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m bench.profile_step", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--preset", default="base", help="model dimensions (aiayn.model.PRESETS)")
    ap.add_argument("--vocab", type=int, default=37000)
    ap.add_argument("--max-tokens", type=int, default=512, help="padded tokens per side")
    ap.add_argument("--seq-len", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--models", nargs="+", default=["aiayn", "marian"])
    ap.add_argument("--rounds", type=int, default=3, help="timed alternating rounds")
    ap.add_argument("--steps", type=int, default=2, help="profiled steps per model")
    ap.add_argument("--top", type=int, default=12, help="ops listed per model")
    ap.add_argument("--out", type=Path, default=None, help="also write the section here")
    ap.add_argument("--append", action="store_true", help="add to --out instead of replacing")
    args = ap.parse_args(argv)
    if args.append and args.out is None:
        ap.error("--append needs --out FILE")
    from bench.bench_train import BUILDERS

    unknown = [m for m in args.models if m not in BUILDERS]
    if unknown:
        ap.error(f"unknown model {unknown[0]!r}: choose from {', '.join(BUILDERS)}")
    return args


def profile(step, steps: int) -> list[tuple[str, float, int]]:
    """(op, self CPU seconds per step, calls per step) of ``steps`` runs of ``step``, the
    largest first."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    rows = [
        (e.key, e.self_cpu_time_total / 1e6 / steps, e.count // steps)
        for e in prof.key_averages()
        if e.self_cpu_time_total > 0
    ]
    return sorted(rows, key=lambda r: -r[1])


def measure(args) -> dict:
    """Timed rates and profiles of ``args.models`` (module doc)."""
    import torch

    from aiayn.hardware import isa_env_settings
    from aiayn.model import PAD, PRESETS
    from bench.bench_train import BUILDERS, make_batch, make_step

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = PRESETS[args.preset]
    torch.manual_seed(0)
    batch = make_batch(args.vocab, args.max_tokens, args.seq_len)
    n_tgt = int(batch[2].ne(PAD).sum())
    steps = {m: make_step(BUILDERS[m](cfg, args.vocab), args.vocab, batch) for m in args.models}
    for step in steps.values():  # warm-up: Adam's state, the allocator
        step()
    rates: dict[str, list[float]] = {m: [] for m in steps}
    for r in range(args.rounds):
        order = args.models[r % len(args.models) :] + args.models[: r % len(args.models)]
        for m in order:
            t = time.perf_counter()
            steps[m]()
            rates[m].append(n_tgt / (time.perf_counter() - t))
    return {
        "where": f"{args.preset} dims (N={cfg.encoder_layers}, d_model={cfg.d_model}, "
        f"d_ff={cfg.d_ff}, h={cfg.n_heads}), V={args.vocab}, batch {batch[0].size(0)}x"
        f"{batch[0].size(1)} ({n_tgt} target tokens), fp32, {torch.get_num_threads()} "
        f"thread(s), CPU kernels {torch.backends.cpu.get_cpu_capability()}"
        + (f" ({env})" if (env := isa_env_settings()) else "")
        + f", torch {torch.__version__}",
        "rounds": args.rounds,
        "steps": args.steps,
        "rates": rates,
        "profiles": {m: profile(step, args.steps) for m, step in steps.items()},
    }


def shares(rows: list[tuple[str, float, int]]) -> dict[str, float]:
    """Share (0-1) of the profiled step's self CPU time per group (:data:`GROUP_NAMES`)."""
    total = sum(r[1] for r in rows) or 1.0
    out = dict.fromkeys(GROUP_NAMES, 0.0)
    for op, sec, _ in rows:
        out[group_of(op)] += sec / total
    return out


def render(result: dict, top: int) -> str:
    """The markdown section (module doc) of :func:`measure`'s result."""
    models = list(result["profiles"])
    lines = [
        f"### Training step profile: {', '.join(models)}",
        "",
        f"{result['where']}; target tokens/s from {result['rounds']} alternating unprofiled "
        f"steps, shares of the self CPU time of {result['steps']} profiled steps.",
        "",
        "| model | target tokens/s: median (min–max) | profiled step (ms) | "
        + " | ".join(GROUP_NAMES)
        + " |",
        "|---" * (3 + len(GROUP_NAMES)) + "|",
    ]
    for m in models:
        rows, r = result["profiles"][m], result["rates"][m]
        share = shares(rows)
        lines.append(
            f"| {m} | {statistics.median(r):.1f} ({min(r):.1f}–{max(r):.1f}) | "
            f"{sum(x[1] for x in rows) * 1e3:.0f} | "
            + " | ".join(f"{share[g]:.1%}" for g in GROUP_NAMES)
            + " |"
        )
    tops = {op for m in models for op, _, _ in result["profiles"][m][:top]}
    ops: dict[str, dict[str, tuple[float, float, int]]] = {op: {} for op in tops}
    for m in models:
        rows = result["profiles"][m]
        total = sum(x[1] for x in rows) or 1.0
        for op, sec, calls in rows:
            if op in ops:
                ops[op][m] = (sec, sec / total, calls)
    order = sorted(ops, key=lambda op: -max(v[1] for v in ops[op].values()))
    lines += [
        "",
        f"Top {top} ops of each by self CPU time (ms per step, share of the step, calls per step):",
        "",
        "| op | group | " + " | ".join(f"{m} ms | {m} share | {m} calls" for m in models) + " |",
        "|---|---|" + "---|" * (3 * len(models)),
    ]
    for op in order:
        cells = []
        for m in models:
            sec, sh, calls = ops[op].get(m, (0.0, 0.0, 0))
            cells += [f"{sec * 1e3:.1f}", f"{sh:.1%}", str(calls)] if calls else ["", "", ""]
        lines.append(f"| `{op}` | {group_of(op)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    md = render(measure(args), args.top)
    print(md)
    if args.out is not None:
        from aiayn.fsio import atomic_file

        before = ""
        if args.append and args.out.exists():
            before = args.out.read_text(encoding="utf-8").rstrip("\n") + "\n\n"
        with atomic_file(args.out) as f:
            f.write(before + md)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
