"""Memory of one training step: ``aiayn model-info``'s estimate against a measured peak.

For each ``max_tokens`` a fresh process builds the Transformer and the trainer exactly as
training does (fp32 on the CPU, fused Adam, label-smoothed loss) and runs two steps of
:meth:`aiayn.train.trainer.Trainer.train_step` on a padded batch of ``max_tokens`` tokens
per side: one that allocates Adam's moments, then one accumulating over two micro-batches
(as the presets do), whose second backward has weights, gradients, moments and one
micro-batch's activations alive at once.

What is measured: the peak of the bytes held by live tensors, from the allocation and
free events torch's CPU allocator reports to :mod:`torch.profiler` (``profile_memory``),
summed in time order from before the model is built (:func:`tensor_peak`). It is the CPU
counterpart of ``torch.cuda.max_memory_allocated`` (what decides whether a batch fits on a
GPU, beside the caching allocator's reserve), and what
:func:`aiayn.model_info.step_memory` estimates: the estimate, at the same ``max_tokens``
(``device="cpu"``, what ``aiayn model-info --preset base --max-tokens N --device cpu``
prints), is the figure; the measurement is the peer; the goal is a ratio within 0.85-1.15.

Not measured: the growth of the process's resident memory, which adds glibc's retained
free memory, thread stacks and library pages, the CPU's counterpart of the GPU caching
allocator's reserve. Measured once without the profiler (``VmHWM`` minus ``VmRSS`` after the
imports, 2 threads, 2026-12-02) it was 22-24 % above the tensor peak at 1024-4096 tokens
(2.35, 3.60 and 6.01 GiB); under the profiler it grew 39-69 % more than the tensors, so
the profiled run's resident memory is not reported.

Sizes: base dimensions, the paper's 37k vocabulary, sentences of 32 tokens, ``max_tokens``
1024, 2048 and 4096 (quick: 1024); tiny (the unit test): demo dimensions, an 8k vocabulary
and 1024 tokens. A CPU measurement; ``bench/gpu.sh`` measures the same on a GPU at the
presets' ``max_tokens`` (``torch.cuda.max_memory_allocated``).

Run alone: ``python -m bench.bench_memory [--quick | --tiny]`` prints the figures as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEQ_LEN = 32


def tensor_peak(fn: Callable[[], object]) -> int:
    """The peak bytes of CPU tensors allocated while ``fn()`` runs and alive at once.

    Runs ``fn`` under :mod:`torch.profiler` with ``profile_memory=True``: torch's CPU
    allocator reports every allocation (+bytes) and free (-bytes); their running sum in
    time order, from 0 at the start, peaks at the answer. Tensors alive before ``fn``
    starts are not counted (call it before building anything)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted(
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]" and e.device_type().name == "CPU"
    )
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak


def child(preset: str, vocab: int, max_tokens: int, seq_len: int = SEQ_LEN) -> dict:
    """Runs in the fresh process: the measured bytes (module doc) and what they rest on."""
    import torch

    from aiayn.batching import Batch
    from aiayn.config import TrainConfig
    from aiayn.model import PAD, PRESETS, Transformer
    from aiayn.precision import select_precision
    from aiayn.train.trainer import Trainer
    from bench.bench_train import make_batch

    src, tgt_in, tgt_out = make_batch(vocab, max_tokens, seq_len)
    batch = Batch(src, tgt_in, tgt_out, int(src.ne(PAD).sum()), int(tgt_out.ne(PAD).sum()))
    cfg = PRESETS[preset]
    cpu, fp32 = torch.device("cpu"), select_precision("fp32", "cpu")
    torch.manual_seed(0)

    def steps() -> None:
        model = Transformer(cfg, vocab)
        trainer = Trainer(model, TrainConfig(precision="fp32"), cfg.d_model, cpu, fp32)
        trainer.train_step([batch])  # allocates Adam's moments
        trainer.train_step([batch, batch])  # the steady state, accumulating over 2 micro-batches

    return {
        "tensor_peak": tensor_peak(steps),
        "batch": list(src.shape),
        "padded_tokens": [src.numel(), tgt_in.numel()],
        "threads": torch.get_num_threads(),
    }


def measure(preset: str, vocab: int, max_tokens: int) -> dict:
    """:func:`child` in a fresh ``python -m bench.bench_memory --child ...`` process."""
    spec = json.dumps({"preset": preset, "vocab": vocab, "max_tokens": max_tokens})
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    r = subprocess.run(
        [sys.executable, "-m", "bench.bench_memory", "--child", spec],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"memory child for max_tokens {max_tokens} failed: {tail}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _point(x: float) -> dict:
    return {"median": x, "min": x, "max": x}


def run(quick: bool, tiny: bool = False) -> list[dict]:
    """The figures (module doc): one per ``max_tokens``."""
    from aiayn.model import PRESETS
    from aiayn.model_info import step_memory

    if tiny:
        preset, vocab, sizes = "demo", 8000, (1024,)
    else:
        preset, vocab = "base", 37000
        sizes = (1024,) if quick else (1024, 2048, 4096)
    cfg = PRESETS[preset]
    figures = []
    for max_tokens in sizes:
        m = measure(preset, vocab, max_tokens)
        got = m["tensor_peak"] / 2**30
        est = step_memory(cfg, vocab, max_tokens, "fp32", "cpu")
        parts = ", ".join(f"{k} {v / 2**30:.3f}" for k, v in est.items() if k != "total" and v)
        figures.append(
            {
                "name": f"training step memory {preset}, max_tokens {max_tokens}: "
                "estimate vs measured",
                "unit": "GiB",
                "aiayn": _point(est["total"] / 2**30),
                "peer": _point(got),
                "peer_name": "measured: peak bytes of live CPU tensors in Trainer.train_step "
                "(torch.profiler allocator events)",
                "ratio": est["total"] / 2**30 / got,
                "ratio_meaning": "aiayn model-info estimate / measured peak (goal 0.85-1.15)",
                "notes": f"{preset} dims, V={vocab}, fp32 on the CPU, batch "
                f"{m['batch'][0]}x{m['batch'][1]} ({m['padded_tokens'][0]} padded tokens per "
                f"side), steps of 1 and 2 micro-batches, {m['threads']} threads; estimate (GiB): "
                f"{parts}; the process's resident memory grows about 20 % more (allocator "
                "slack, not counted)",
                "precision": "fp32",
            }
        )
    return figures


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        spec = json.loads(sys.argv[2])
        print(json.dumps(child(spec["preset"], spec["vocab"], spec["max_tokens"])))
    else:
        from bench.report import run_alone

        run_alone(run, __doc__)
