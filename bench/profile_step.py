"""Where one training step spends its time: aiayn against its peers, op by op.

``python -m bench.profile_step --preset base --max-tokens 128 --threads 1`` builds the
models of :mod:`bench.bench_train` (same dimensions, same batch, same loss and Adam), times
them alternately without the profiler (target tokens/s, median of ``--rounds``), then runs
``--steps`` steps of each under :mod:`torch.profiler` and prints, per model, the ops with
the most self CPU time and the share of the step in each kind of op (matrix products,
attention, the softmax/loss, the optimizer, the rest). ``--json PATH`` also writes the
numbers. A diagnostic, not a benchmark: it writes nothing to ``reports/``.

Under ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`` it shows an AVX2-only CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

# Self-CPU-time groups, matched on the op name (first match wins).
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("matrix products", ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "mkldnn")),
    ("attention", ("attention", "sdpa", "flash")),
    ("softmax and loss", ("softmax", "nll_loss", "cross_entropy", "log_softmax")),
    ("optimizer", ("adam", "foreach", "optimizer")),
    ("layer norm", ("layer_norm",)),
    ("dropout and random", ("dropout", "bernoulli", "uniform", "random", "rand")),
)


def group_of(op: str) -> str:
    """The group of :data:`GROUPS` an op name belongs to ('other' if none)."""
    low = op.lower()
    for group, keys in GROUPS:
        if any(k in low for k in keys):
            return group
    return "other"


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.profile_step", description=__doc__)
    ap.add_argument("--preset", default="base", help="model dimensions (aiayn.model.PRESETS)")
    ap.add_argument("--vocab", type=int, default=37000)
    ap.add_argument("--max-tokens", type=int, default=128, help="padded tokens per side")
    ap.add_argument("--seq-len", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    ap.add_argument("--models", nargs="+", default=["aiayn", "marian"])
    ap.add_argument("--rounds", type=int, default=5, help="timed alternating rounds")
    ap.add_argument("--steps", type=int, default=3, help="profiled steps per model")
    ap.add_argument("--top", type=int, default=12, help="ops listed per model")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    return ap.parse_args(argv)


def profile(step, steps: int) -> list[tuple[str, float, int]]:
    """(op, self CPU seconds per step, calls per step) of ``steps`` runs of ``step``."""
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
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
    for step in steps.values():  # warm-up (Adam state, allocator)
        step()
        step()
    rates: dict[str, list[float]] = {m: [] for m in steps}
    for r in range(args.rounds):
        order = args.models[r % len(args.models) :] + args.models[: r % len(args.models)]
        for m in order:
            t = time.perf_counter()
            steps[m]()
            rates[m].append(n_tgt / (time.perf_counter() - t))
    print(
        f"{args.preset} dims, V={args.vocab}, batch {batch[0].size(0)}x{batch[0].size(1)} "
        f"({n_tgt} target tokens), fp32, {torch.get_num_threads()} thread(s), CPU kernels "
        f"{torch.backends.cpu.get_cpu_capability()} {isa_env_settings()}".rstrip()
    )
    out: dict = {"batch": list(batch[0].shape), "target_tokens": n_tgt, "models": {}}
    for m, step in steps.items():
        rows = profile(step, args.steps)
        total = sum(r[1] for r in rows)
        groups: dict[str, float] = {}
        for op, sec, _ in rows:
            groups[group_of(op)] = groups.get(group_of(op), 0.0) + sec
        med = statistics.median(rates[m])
        print(
            f"\n== {m}: {med:.1f} target tokens/s (median of {args.rounds}, "
            f"{min(rates[m]):.1f}-{max(rates[m]):.1f}); profiled step {total * 1e3:.0f} ms"
        )
        print("  by kind: " + ", ".join(f"{g} {s / total:.0%}" for g, s in _by_size(groups)))
        print(f"  {'op':<44}{'ms/step':>10}{'share':>8}{'calls':>7}")
        for op, sec, calls in rows[: args.top]:
            print(f"  {op[:43]:<44}{sec * 1e3:>10.1f}{sec / total:>8.1%}{calls:>7}")
        out["models"][m] = {
            "tokens_per_s": rates[m],
            "step_ms": total * 1e3,
            "groups_ms": {g: s * 1e3 for g, s in groups.items()},
            "top": [(op, sec * 1e3, calls) for op, sec, calls in rows[: args.top]],
        }
    if args.json:
        from aiayn.fsio import atomic_file

        with atomic_file(args.json) as f:
            f.write(json.dumps(out, indent=2) + "\n")
    return 0


def _by_size(groups: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(groups.items(), key=lambda kv: -kv[1])


if __name__ == "__main__":
    sys.exit(main())
