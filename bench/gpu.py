"""GPU check: Transformer base and big training throughput, MFU and memory in the precision
``train.precision: auto`` picks, beam-4 decoding against Marian, and a 3-minute run of the
real pipeline ending with a BLEU score, in one run of at most 8 minutes.

Run it through ``bench/gpu.sh`` (no installation: ``PYTHONPATH`` is the repository, no
network). The measurements need torch (>= 2.4; written against 2.11 APIs) and numpy, the
decoding peer transformers, the pipeline run aiayn's runtime dependencies (tokenizers,
sacrebleu, sacremoses, typer, pyyaml, tqdm); never dvc (nor dvclive, datasets: without
dvclive the trainer logs no curves). A case whose needs are missing is skipped, with the
reason in the report.

What it does, in this order, against a time budget (``--budget``, default 420 s, of which
the pipeline run keeps its share):

1. the measured dense matrix-multiply rate (``n x n @ n x n``, n = 8192) in each precision,
   next to the datasheet peak of known GPUs (:data:`aiayn.train.flops.GPU_PEAK_TFLOPS`:
   H200/H100/A100/L4/T4/V100/P100 and more);
2. for each preset (base, big) and precision (``auto`` by default: bf16 on compute
   capability >= 8.0, fp16 with loss scaling below): target tokens/s of
   :meth:`aiayn.train.trainer.Trainer.train_step` (the trainer's real step: autocast,
   label-smoothed loss, fused Adam, the fp16 loss scaler) at the preset's
   ``train.max_tokens`` with its accumulation (``configs/base.yaml``: 12500 x 2,
   ``big.yaml``: 6250 x 4), over a few timed rounds; the model FLOPs utilisation
   (:func:`aiayn.model_info.train_flops`, exact matmul FLOPs) against the datasheet peak and
   against the measured matmul rate; and the peak memory of those steps
   (``torch.cuda.max_memory_allocated``) against ``aiayn model-info``'s estimate
   (:func:`aiayn.model_info.step_memory`). ``--max-tokens A B ...`` instead tries those
   sizes largest first and keeps the largest that trains without running out of memory (an
   OOM frees the memory and tries the next);
3. beam-4 decoding of 3003 newstest-length sentences with the base dimensions (random
   weights, bf16 where native, else fp16; batches of 4096 source tokens as ``aiayn
   translate``), sentences/s, alternating batch by batch with ``transformers``
   ``MarianMTModel.generate(num_beams=4)`` of the same dimensions and forced to the same
   output lengths (see :mod:`bench.bench_decode`). Rounds that do not fit in the budget are
   skipped (the notes say how many sentences were decoded);
4. the demo pipeline at base dimensions (:mod:`bench.gpu_pipeline`): download -> clean ->
   tokenize -> shard -> train for about 3 minutes (``--pipeline-train-seconds``; planned in
   steps from the base training rate measured in 2, :func:`pipeline_rate`, so that it ends
   on the ``save_every`` grid that averaging needs) -> average -> translate -> score, the
   stage modules run directly in a scratch folder; figures: test sacreBLEU, wall time per
   stage, training steps; the stages' output goes to ``bench_gpu_pipeline.log`` next to
   the JSON.

Output: ``$OUT/bench_gpu.json`` when ``OUT`` is set, else ``reports/bench_gpu.json`` (or
``--out``), rewritten after every case so a run cut short keeps what it measured, and
``bench_gpu.md`` next to it; the format of ``reports/bench.json`` (:mod:`bench.report`).

``--tiny`` runs the same code on the CPU with the demo dimensions and tiny sizes (the unit
test: sizes 512/256/128 searched, 2 micro-batches, a 5-second pipeline run on a 2k-pair
corpus); ``--simulate-oom-above N`` makes every ``max_tokens`` above N fail like an OOM,
to test the search where there is no GPU.
"""

from __future__ import annotations

import argparse
import gc
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from bench.report import (
    ROOT,
    CpuUse,
    build_report,
    check_figure,
    cpu_info,
    machine_info,
    now_utc,
    write_report,
)

VOCAB = 37_000  # the paper's shared EN-DE BPE vocabulary
# Seconds the pipeline run needs besides training: eight python starts, the demo corpus,
# BPE and shards, averaging, translating 1500 sentences and scoring.
PIPELINE_OVERHEAD = 75.0
# max_tokens candidates, tried largest first
MAX_TOKENS = (131072, 98304, 65536, 49152, 32768, 24576, 16384, 12288, 8192, 6144, 4096, 2048)


def _stats(xs: list[float]) -> dict:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def default_out() -> Path:
    out = os.environ.get("OUT")
    return Path(out) / "bench_gpu.json" if out else ROOT / "reports" / "bench_gpu.json"


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="JSON path (md written next to it)")
    ap.add_argument("--budget", type=float, default=420.0, help="seconds for all measurements")
    ap.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    ap.add_argument("--presets", nargs="+", default=["base", "big"], help="training presets")
    ap.add_argument(
        "--precisions",
        nargs="+",
        default=["auto"],
        help="training precisions (auto: what train.precision auto picks; bf16, fp16, fp32)",
    )
    ap.add_argument(
        "--max-tokens",
        nargs="+",
        type=int,
        default=None,
        help="micro-batch sizes to try, largest first (default: the preset's train.max_tokens "
        f"only; e.g. {' '.join(map(str, MAX_TOKENS[:4]))} ... to find the largest that fits)",
    )
    ap.add_argument(
        "--micro-batches",
        type=int,
        default=0,
        help="micro-batches per step (0: the preset's accumulation, tokens_per_step / max_tokens)",
    )
    ap.add_argument("--seq-len", type=int, default=32, help="padded sentence length")
    ap.add_argument("--vocab", type=int, default=VOCAB)
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds per training case")
    ap.add_argument("--round-seconds", type=float, default=1.5, help="aim per timed round")
    ap.add_argument("--matmul-n", type=int, default=8192)
    ap.add_argument("--matmul-seconds", type=float, default=0.25, help="per timed round")
    ap.add_argument("--decode-preset", default="base")
    ap.add_argument("--decode-sentences", type=int, default=3003)
    ap.add_argument("--decode-max-tokens", type=int, default=4096)
    ap.add_argument("--decode-rounds", type=int, default=6, help="interleaved slices")
    ap.add_argument("--no-peer", action="store_true", help="decode without the Marian peer")
    ap.add_argument(
        "--pipeline-train-seconds",
        type=float,
        default=180.0,
        help="the demo pipeline run's training time (0: no pipeline run)",
    )
    ap.add_argument(
        "--pipeline-dir",
        type=Path,
        default=None,
        help="scratch folder for the pipeline run (default: a temporary one, removed after)",
    )
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--tiny", action="store_true", help="CPU self-test at tiny sizes")
    ap.add_argument("--simulate-oom-above", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.tiny:
        if args.device == "auto":
            args.device = "cpu"
        args.presets, args.precisions = ["demo"], ["auto", "bf16"]
        args.max_tokens, args.seq_len, args.vocab = [512, 256, 128], 16, 1000
        args.micro_batches = 2
        args.pipeline_train_seconds = min(args.pipeline_train_seconds, 5.0)
        args.rounds, args.round_seconds, args.matmul_n, args.matmul_seconds = 2, 0.05, 256, 0.02
        args.decode_preset, args.decode_sentences, args.decode_max_tokens = "demo", 6, 96
        args.decode_rounds = 2
    args.out = args.out or default_out()
    return args


# ----------------------------------------------------------------------------- helpers


class Clock:
    """Seconds left of the run's budget."""

    def __init__(self, budget: float):
        self.t0 = time.perf_counter()
        self.deadline = self.t0 + budget

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def is_oom(e: BaseException) -> bool:
    """An out-of-memory error of the allocator, cuBLAS or cuDNN."""
    import torch

    if isinstance(e, torch.cuda.OutOfMemoryError):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and (
        "out of memory" in text.lower() or "ALLOC_FAILED" in text
    )


def free_memory(device) -> None:
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def largest_fitting(
    candidates: list[int],
    try_size: Callable[[int], None],
    on_oom: Callable[[], None],
    simulate_oom_above: int | None = None,
) -> tuple[int | None, list[int]]:
    """The largest candidate for which ``try_size`` runs without an out-of-memory error.

    Tries the candidates largest first; after an OOM calls ``on_oom`` (free memory, rebuild
    state) outside the ``except`` block, so the failed attempt's tensors, which the
    traceback holds, are released first. Other errors propagate. Returns (the size, or
    None when none fits; the sizes that did not fit).
    """
    import torch

    failed: list[int] = []
    for size in sorted(set(candidates), reverse=True):
        oom = False
        try:
            if simulate_oom_above is not None and size > simulate_oom_above:
                raise torch.cuda.OutOfMemoryError(f"simulated: {size} > {simulate_oom_above}")
            try_size(size)
        except Exception as e:
            if not is_oom(e):
                raise
            oom = True
        if not oom:
            return size, failed
        failed.append(size)
        on_oom()
    return None, failed


def matmul_rate(device, dtype, n: int, repeats: int = 5, seconds: float = 0.25) -> dict:
    """Measured ``n x n @ n x n`` rate in TFLOP/s (median/min/max over ``repeats``)."""
    import torch

    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    c = torch.empty(n, n, device=device, dtype=dtype)
    for _ in range(3):
        torch.mm(a, b, out=c)
    sync(device)
    t = time.perf_counter()
    torch.mm(a, b, out=c)
    sync(device)
    k = max(1, int(seconds / max(time.perf_counter() - t, 1e-6)))
    rates = []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        for _ in range(k):
            torch.mm(a, b, out=c)
        sync(device)
        rates.append(2 * n**3 * k / (time.perf_counter() - t) / 1e12)
    del a, b, c
    return _stats(rates)


def figure(
    name,
    unit,
    ours,
    *,
    peer=None,
    peer_name=None,
    ratio=None,
    meaning="",
    notes="",
    precision,
    paired=None,
):
    return {
        "precision": precision,
        "paired": paired,
        "name": name,
        "unit": unit,
        "aiayn": ours,
        "peer": peer,
        "peer_name": peer_name,
        "ratio": ratio,
        "ratio_meaning": meaning,
        "notes": notes,
    }


# ----------------------------------------------------------------------------- training


def preset_batch(preset: str) -> tuple[int, int]:
    """(train.max_tokens, train.tokens_per_step) of ``configs/<preset>.yaml``."""
    from aiayn.config import load_params

    t = load_params(ROOT / "configs" / f"{preset}.yaml").train
    return t.max_tokens, t.tokens_per_step


def memory_figure(
    preset: str, prec: str, max_tokens: int, vocab: int, micro: int, peak: int, reserved: int
) -> dict:
    """Peak memory of the timed steps (``torch.cuda.max_memory_allocated``: tensors) against
    :func:`aiayn.model_info.step_memory` for the same preset, precision and micro-batch."""
    from aiayn.model import PRESETS
    from aiayn.model_info import step_memory

    est = step_memory(PRESETS[preset], vocab, max_tokens, prec, "cuda")
    parts = ", ".join(f"{k} {v / 2**30:.2f}" for k, v in est.items() if k != "total" and v)
    return figure(
        f"training step memory {preset} {prec}, max_tokens {max_tokens}: estimate vs measured",
        "GiB",
        {"median": est["total"] / 2**30, "min": est["total"] / 2**30, "max": est["total"] / 2**30},
        peer={"median": peak / 2**30, "min": peak / 2**30, "max": peak / 2**30},
        peer_name="measured: torch.cuda.max_memory_allocated over the timed steps",
        ratio=est["total"] / peak,
        meaning="aiayn model-info estimate / measured peak of allocated tensors (goal 0.85-1.15)",
        notes=f"{micro} micro-batch(es) per step, so gradients are alive in the later ones; "
        f"estimate (GiB): {parts}; the allocator reserved {reserved / 2**30:.2f} GiB at the "
        "peak (tensors + cache)",
        precision=prec,
    )


def train_case(model, preset: str, prec_name: str, device, args, case_deadline: float, mm: dict):
    """Training figures of ``model`` (preset ``preset``) in ``prec_name`` (module doc, 2)."""
    import math

    import torch

    from aiayn.batching import Batch
    from aiayn.config import TrainConfig
    from aiayn.model import PRESETS
    from aiayn.model_info import train_flops
    from aiayn.precision import select_precision
    from aiayn.train.flops import gpu_peak_flops
    from aiayn.train.trainer import Trainer
    from aiayn.vocab import PAD
    from bench.bench_train import make_batch

    cfg = PRESETS[preset]
    precision = select_precision(prec_name, device.type)  # ConfigError: not on this device
    name = precision.name + (f" ({prec_name})" if prec_name != precision.name else "")
    preset_tokens, per_step = preset_batch(preset)
    candidates = args.max_tokens or [preset_tokens]
    tcfg = TrainConfig(compile=args.compile, precision=prec_name)
    state: dict = {}

    def micro_of(size: int) -> int:
        return args.micro_batches or max(1, math.ceil(per_step / size))

    def new_trainer() -> None:
        model.zero_grad(set_to_none=True)
        state["trainer"] = Trainer(model, tcfg, cfg.d_model, device, precision)

    def batch_of(size: int) -> Batch:
        src, tgt_in, tgt_out = make_batch(args.vocab, size, args.seq_len, seed=size)
        n_src, n_tgt = int(src.ne(PAD).sum()), int(tgt_out.ne(PAD).sum())
        return Batch(src, tgt_in, tgt_out, n_src, n_tgt).to(device)

    def try_size(size: int) -> None:
        b = batch_of(size)
        for _ in range(2):  # the first step also allocates Adam's state
            state["trainer"].train_step([b] * micro_of(size))
        sync(device)

    def on_oom() -> None:
        state.pop("trainer", None)
        free_memory(device)
        new_trainer()

    new_trainer()
    size, failed = largest_fitting(candidates, try_size, on_oom, args.simulate_oom_above)
    if size is None:
        raise RuntimeError(f"no max_tokens in {sorted(candidates)} fits in memory")
    micro = micro_of(size)
    if device.type == "cuda":  # the peak of the size that fits, not of the failed tries
        torch.cuda.reset_peak_memory_stats(device)
    trainer, b = state["trainer"], batch_of(size)
    step_batches = [b] * micro
    sync(device)
    t = time.perf_counter()
    trainer.train_step(step_batches)
    sync(device)
    per_round = max(1, round(args.round_seconds / (time.perf_counter() - t)))
    rates: list[float] = []
    while len(rates) < args.rounds and (len(rates) < 2 or time.perf_counter() < case_deadline):
        sync(device)
        t = time.perf_counter()
        for _ in range(per_round):
            trainer.train_step(step_batches)
        sync(device)
        rates.append(micro * b.n_tgt_tokens * per_round / (time.perf_counter() - t))
    flops = train_flops(
        cfg, args.vocab, b.n_src_tokens, b.n_tgt_tokens, b.src.size(1), b.tgt_in.size(1)
    )
    flops_per_tok = flops / b.n_tgt_tokens
    tok = _stats(rates)
    where = (
        f"{preset} dims (N={cfg.encoder_layers}, d_model={cfg.d_model}, d_ff={cfg.d_ff}, "
        f"h={cfg.n_heads}), V={args.vocab}, {name}; max_tokens {size} "
        + (
            "(the preset's train.max_tokens)"
            if not args.max_tokens
            else f"(the largest of {sorted(candidates, reverse=True)[:4]}... that fits"
            + (f"; {', '.join(map(str, failed))} did not)" if failed else ")")
        )
        + f", batch {b.src.size(0)}x{b.src.size(1)} ({b.n_tgt_tokens} target tokens) x "
        f"{micro} micro-batch(es) per step; Trainer.train_step, {per_round} steps x "
        f"{len(rates)} rounds" + ("; torch.compile" if args.compile else "")
    )
    figs = [
        figure(
            f"train tokens/s {preset} {name}",
            "target tokens/s",
            tok,
            notes=where,
            precision=precision.name,
        )
    ]
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    peak = gpu_peak_flops(gpu, precision.name) if gpu else None
    if peak:
        figs.append(
            figure(
                f"MFU {preset} {name} (datasheet peak)",
                "fraction of datasheet dense peak",
                {k: v * flops_per_tok / peak for k, v in tok.items()},
                notes=f"{flops / 1e9:.1f} GFLOP per micro-batch (aiayn.model_info.train_flops); "
                f"{gpu} {precision.name} dense peak {peak / 1e12:.0f} TFLOP/s",
                precision=precision.name,
            )
        )
    if mm:
        figs.append(
            figure(
                f"MFU {preset} {name} (measured matmul)",
                f"fraction of measured {precision.name} matmul rate",
                {k: v * flops_per_tok / (mm["median"] * 1e12) for k, v in tok.items()},
                notes=f"{flops / 1e9:.1f} GFLOP per micro-batch / its time / measured "
                f"{mm['median']:.3g} TFLOP/s"
                + ("" if peak else "; the peak used for MFU where the GPU is not in the table"),
                precision=precision.name,
            )
        )
    if device.type == "cuda":
        figs.append(
            memory_figure(
                preset,
                precision.name,
                size,
                args.vocab,
                micro,
                torch.cuda.max_memory_allocated(device),
                torch.cuda.max_memory_reserved(device),
            )
        )
    del state["trainer"], trainer, b, step_batches
    return figs


# ----------------------------------------------------------------------------- decoding


def decode_case(device, args, deadline: float) -> list[dict]:
    """Beam-4 decoding figures (module doc, 3)."""
    import torch

    from aiayn.model import PRESETS, Transformer
    from aiayn.precision import select_precision
    from bench import bench_decode as bd

    prec = select_precision("auto", device.type)
    marian = None
    if not args.no_peer:
        try:
            aiayn, marian = bd.build_models(args.decode_vocab, args.decode_preset)
        except ImportError:
            pass
    if marian is None:
        torch.manual_seed(0)
        aiayn = Transformer(PRESETS[args.decode_preset], args.decode_vocab).eval()
    aiayn = aiayn.to(device=device, dtype=prec.dtype)
    if marian is not None:
        marian = marian.to(device=device, dtype=prec.dtype)
    fns = bd.systems(aiayn, marian, beam=4)
    names = ["aiayn"] + (["marian"] if marian is not None else [])

    def timed(name: str, src, L: int) -> tuple[int, float]:
        sync(device)
        t = time.perf_counter()
        n_tok = fns[name](src, L)
        sync(device)
        return n_tok, time.perf_counter() - t

    batches = [
        (src.to(device), L)
        for src, L in bd.make_batches(
            bd.source_lengths(args.decode_sentences), args.decode_vocab, args.decode_max_tokens
        )
    ]
    for name in names:  # warm-up
        timed(name, batches[-1][0][:2], 3)
        timed(name, batches[0][0][:8], 8)
    n_rounds = min(args.decode_rounds, len(batches))
    res: dict[str, list] = {n: [] for n in names}
    for r in range(n_rounds):
        if r and time.perf_counter() > deadline:
            break
        chunk = batches[r::n_rounds]
        elapsed, n_tok = dict.fromkeys(names, 0.0), dict.fromkeys(names, 0)
        for i, (src, L) in enumerate(chunk):
            shift = (r + i) % len(names)
            for name in names[shift:] + names[:shift]:
                k, s = timed(name, src, L)
                n_tok[name] += k
                elapsed[name] += s
        n_sent = sum(src.size(0) for src, _ in chunk)
        for name in names:
            res[name].append((n_sent, n_tok[name], elapsed[name]))
    done = sum(x[0] for x in res["aiayn"])
    where = (
        f"{done} of {args.decode_sentences} newstest-length sentences ({len(res['aiayn'])} of "
        f"{n_rounds} interleaved rounds in the budget), {args.decode_preset} dims, "
        f"V={args.decode_vocab}, random weights, {prec.name}, beam 4, max_tokens "
        f"{args.decode_max_tokens}, equal output lengths forced"
    )
    figs = []
    for unit_i, unit in ((0, "sentences/s"), (1, "tokens/s")):
        if marian is not None:
            ours, theirs, ratio, paired = bd.compare(res, "aiayn", "marian", unit_i)
            figs.append(
                figure(
                    f"beam-4 decoding {unit} {args.decode_preset} {prec.name}: aiayn vs Marian",
                    unit,
                    ours,
                    peer=theirs,
                    peer_name="transformers MarianMTModel.generate(num_beams=4)",
                    ratio=ratio,
                    paired=paired,
                    meaning=f"aiayn / Marian {unit} on the same batches (ratio of totals)",
                    notes=where,
                    precision=prec.name,
                )
            )
        else:
            rates = [x[unit_i] / x[2] for x in res["aiayn"]]
            figs.append(
                figure(
                    f"beam-4 decoding {unit} {args.decode_preset} {prec.name}",
                    unit,
                    _stats(rates),
                    notes=where + "; no peer (transformers not importable or --no-peer)",
                    precision=prec.name,
                )
            )
    return figs


# ----------------------------------------------------------------------------- pipeline


class Skip(Exception):
    """A case that cannot run here (recorded as skipped, with the reason)."""


def pipeline_rate(figures: list[dict], mm: dict, vocab: int) -> tuple[float, str]:
    """Target tokens/s to plan the pipeline's training with, and where it comes from: the
    base training rate measured above (``train tokens/s base ...``), else 30 % of the
    measured matmul rate over base's FLOPs per token, else 1000."""
    from aiayn.model import PRESETS
    from aiayn.model_info import train_flops_per_token

    for f in figures:
        if f["name"].startswith("train tokens/s base "):
            return f["aiayn"]["median"], f"{f['name']} measured above"
    if mm:
        rate = next(iter(mm.values()))["median"] * 1e12
        per_token = train_flops_per_token(PRESETS["base"], vocab)
        return 0.3 * rate / per_token, "30% of the measured matmul rate (no base training figure)"
    return 1000.0, "an assumed 1000 target tokens/s (nothing measured)"


def pipeline_case(args, clock: Clock, figures: list[dict], mm: dict) -> list[dict]:
    """The demo pipeline at base dimensions (module doc, 4; :mod:`bench.gpu_pipeline`),
    its steps planned from the training rate measured before (:func:`pipeline_rate`)."""
    import shutil
    import tempfile

    from bench import gpu_pipeline as gp

    if missing := gp.missing_dependencies():
        raise Skip(
            f"the pipeline run needs {', '.join(missing)} (aiayn's runtime dependencies: "
            "pip install -e .)"
        )
    seconds = min(args.pipeline_train_seconds, max(10.0, clock.left() - PIPELINE_OVERHEAD))
    rate, source = pipeline_rate(figures, mm, gp.demo_vocab_size())
    # Demo sentences are shorter and each step carries the optimizer and the loader: plan on
    # 70 % of the rate, and let the SIGTERM stop a run that is slower still.
    max_steps, save_every = gp.plan_steps(seconds, 0.7 * rate / gp.TOKENS_PER_STEP)
    plan = f"planned at 70% of {rate:,.0f} target tokens/s ({source})"
    params = gp.pipeline_params(args.tiny, max_steps, save_every)
    work = args.pipeline_dir or Path(tempfile.mkdtemp(prefix="aiayn-gpu-pipeline."))
    log = args.out.with_name(args.out.stem + "_pipeline.log")
    log.unlink(missing_ok=True)
    deadline = time.monotonic() + clock.left() + 40  # gpu.sh stops everything at 480 s
    try:
        result = gp.run_pipeline(work, params, seconds, log, deadline)
    finally:
        if args.pipeline_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    return gp.pipeline_figures(result, params, seconds, "" if args.tiny else plan)


# ----------------------------------------------------------------------------- main


def gpu_facts(device) -> dict | None:
    import torch

    if device.type != "cuda":
        return None
    p = torch.cuda.get_device_properties(device)
    return {
        "name": p.name,
        "capability": f"{p.major}.{p.minor}",
        "memory_gb": round(p.total_memory / 2**30, 1),
        "count": torch.cuda.device_count(),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
    }


class Run:
    """Collects figures and rewrites the report after every case."""

    def __init__(self, args, argv: list[str], machine: dict):
        self.args, self.argv, self.machine = args, argv, machine
        self.started, self.t0, self.cpu = now_utc(), time.perf_counter(), CpuUse()
        self.benchmarks: dict = {}
        self.figures: list[dict] = []

    def case(self, name: str, fn: Callable[[], list[dict]]) -> object:
        """Run one case; record its figures, or its error (then go on)."""
        t, cpu = time.perf_counter(), CpuUse()
        entry = {"module": "bench.gpu", "seconds": None, "figures": 0, "error": None}
        print(f"== {name}", file=sys.stderr, flush=True)
        try:
            figs = fn()
            self.figures += [
                {"bench": name, **check_figure(f, f"{name}[{i}]")} for i, f in enumerate(figs)
            ]
            entry["figures"] = len(figs)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # recorded; the next case still runs
            import traceback

            from aiayn.errors import ConfigError

            if isinstance(e, ConfigError | Skip):
                entry["skipped"] = str(e)
            else:
                traceback.print_exc()
                entry["error"] = f"{type(e).__name__}: {e}".strip().splitlines()[0][:500]
        entry["seconds"] = round(time.perf_counter() - t, 1)
        entry.update(cpu.record())
        self.benchmarks[name] = entry
        print(f"== {name}: {entry.get('error') or entry.get('skipped') or 'ok'}", file=sys.stderr)
        self.write()
        return entry

    def write(self) -> str:
        report = build_report(
            kind="gpu" if self.machine.get("gpu") else "cpu",
            mode="tiny" if self.args.tiny else "default",
            command=shlex.join(["python", "-m", "bench.gpu", *self.argv]),
            machine={**self.machine, "others_cpu": self.cpu.others(), "own_cpu": self.cpu.own()},
            benchmarks=self.benchmarks,
            figures=self.figures,
            started=self.started,
            seconds=time.perf_counter() - self.t0,
        )
        return write_report(report, self.args.out, self.args.out.with_suffix(".md"))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    args.decode_vocab = args.vocab
    clock = Clock(args.budget)
    import torch

    from aiayn.model import PRESETS, Transformer
    from aiayn.precision import select_device

    device = select_device(args.device, key="--device")
    if device.type != "cuda" and args.device == "auto" and not args.tiny:
        print("no CUDA GPU found (use --device cpu or --tiny to run on the CPU)", file=sys.stderr)
        return 2
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    machine = machine_info()
    machine.update(torch_threads=torch.get_num_threads(), gpu=gpu_facts(device), **cpu_info())
    run = Run(args, argv, machine)

    # 1. matmul rates
    mm: dict[str, dict] = {}

    def matmuls() -> list[dict]:
        from aiayn.precision import select_precision
        from aiayn.train.flops import gpu_peak_flops

        figs = []
        for p in args.precisions:
            try:
                prec = select_precision(p, device.type)
            except Exception:
                continue
            mm[p] = s = matmul_rate(device, prec.dtype, args.matmul_n, seconds=args.matmul_seconds)
            name = machine["gpu"]["name"] if machine.get("gpu") else None
            peak = gpu_peak_flops(name, prec.name) if name else None
            label = prec.name + (f" ({p})" if p != prec.name else "")
            figs.append(
                figure(
                    f"matmul rate {label} ({args.matmul_n}^3)",
                    "TFLOP/s",
                    s,
                    ratio=s["median"] * 1e12 / peak if peak else None,
                    meaning=(
                        f"measured / datasheet dense peak ({peak / 1e12:.0f} TFLOP/s)"
                        if peak
                        else ""
                    ),
                    notes=f"torch.mm on {name or 'the CPU'}; "
                    + ("datasheet peak from aiayn.train.flops" if peak else "no datasheet peak"),
                    precision=prec.name,
                )
            )
        return figs

    run.case("matmul", matmuls)

    # The pipeline run (last) keeps its time; training gets 60% of the rest, decoding the rest.
    reserve = args.pipeline_train_seconds + PIPELINE_OVERHEAD if args.pipeline_train_seconds else 0
    measure_end = clock.deadline - reserve

    # 2. training, shared by the remaining cases
    cases = [(p, q) for p in args.presets for q in args.precisions]
    train_end = clock.t0 + 0.6 * (measure_end - clock.t0)
    models: dict = {}  # one model per preset, shared by its precisions (fp32 weights)

    def train_one(preset: str, prec: str, case_deadline: float) -> list[dict]:
        if preset not in models:
            torch.manual_seed(0)
            models[preset] = Transformer(PRESETS[preset], args.vocab).to(device)
        mm_prec = mm.get(prec, {})
        return train_case(models[preset], preset, prec, device, args, case_deadline, mm_prec)

    for preset in args.presets:
        for prec in args.precisions:
            left = cases.index((preset, prec))
            share = (train_end - time.perf_counter()) / max(1, len(cases) - left)
            case_deadline = time.perf_counter() + max(share, 5.0)

            if clock.left() < 30:
                run.benchmarks[f"train {preset} {prec}"] = {
                    "module": "bench.gpu",
                    "seconds": 0.0,
                    "figures": 0,
                    "error": None,
                    "skipped": "out of time budget",
                }
                continue
            run.case(f"train {preset} {prec}", partial(train_one, preset, prec, case_deadline))
            free_memory(device)
        models.clear()
        free_memory(device)

    # 3. decoding, up to the pipeline's reserve (keeping a margin)
    decode_deadline = measure_end - 10
    run.case("decode", lambda: decode_case(device, args, decode_deadline))
    free_memory(device)

    # 4. the demo pipeline at base dimensions, stage by stage
    if args.pipeline_train_seconds:
        run.case("pipeline", lambda: pipeline_case(args, clock, run.figures, mm))
    md = run.write()
    print(md)
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}", file=sys.stderr)
    return 1 if any(b.get("error") for b in run.benchmarks.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
