"""GPU benchmark: Transformer base and big training throughput and MFU in bf16 and fp16 at
the largest ``max_tokens`` that fits, and beam-4 decoding speed, in one short run.

Run it through ``bench/gpu.sh`` (no installation: ``PYTHONPATH`` is the repository, no
network, at most 8 minutes). It needs torch (>= 2.4; written against 2.11 APIs), numpy and,
for the decoding peer, transformers; never dvc, dvclive, sacremoses or datasets.

What it measures, in this order, each against a time budget (``--budget``, default 420 s):

1. the measured dense matrix-multiply rate (``n x n @ n x n``, n = 8192) in each precision,
   next to the datasheet peak of known GPUs (:data:`aiayn.train.flops.GPU_PEAK_TFLOPS`:
   H200/H100/A100/L4/T4/V100/P100 and more);
2. for each preset (base, big) and precision (bf16, fp16): the largest ``max_tokens`` per
   micro-batch that trains without running out of memory (descending candidates, 131072
   first; an OOM frees the memory and tries the next), then target tokens/s of
   :meth:`aiayn.train.trainer.Trainer.train_step` there (the trainer's real step: autocast,
   label-smoothed loss, fused Adam, the fp16 loss scaler) over a few timed rounds, and the
   model FLOPs utilisation (:func:`aiayn.model_info.train_flops`, exact matmul FLOPs) against
   the datasheet peak and against the measured matmul rate. bf16 on a GPU without native
   bf16 (compute capability < 8.0) is skipped, as the trainer refuses it;
3. beam-4 decoding of 3003 newstest-length sentences with the base dimensions (random
   weights, bf16 where native, else fp16; batches of 4096 source tokens as ``aiayn
   translate``), sentences/s, alternating batch by batch with ``transformers``
   ``MarianMTModel.generate(num_beams=4)`` of the same dimensions and forced to the same
   output lengths (see :mod:`bench.bench_decode`). Rounds that do not fit in the budget are
   skipped (the notes say how many sentences were decoded).

Output: ``$OUT/bench_gpu.json`` when ``OUT`` is set, else ``reports/bench_gpu.json`` (or
``--out``), rewritten after every measurement so a run cut short keeps what it measured,
and ``bench_gpu.md`` next to it; the format of ``reports/bench.json`` (:mod:`bench.report`).

``--tiny`` runs the same code on the CPU with the demo dimensions and tiny sizes (the unit
test); ``--simulate-oom-above N`` makes every ``max_tokens`` above N fail like an OOM, to
test the search where there is no GPU.
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
    build_report,
    check_figure,
    cpu_info,
    machine_info,
    now_utc,
    write_report,
)

VOCAB = 37_000  # the paper's shared EN-DE BPE vocabulary
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
    ap.add_argument("--precisions", nargs="+", default=["bf16", "fp16"], help="training")
    ap.add_argument("--max-tokens", nargs="+", type=int, default=list(MAX_TOKENS))
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
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--tiny", action="store_true", help="CPU self-test at tiny sizes")
    ap.add_argument("--simulate-oom-above", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.tiny:
        if args.device == "auto":
            args.device = "cpu"
        args.presets, args.precisions = ["demo"], ["fp32", "bf16"]
        args.max_tokens, args.seq_len, args.vocab = [512, 256, 128], 16, 1000
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
    name, unit, ours, *, peer=None, peer_name=None, ratio=None, meaning="", notes="", precision
):
    return {
        "precision": precision,
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


def train_case(model, preset: str, prec_name: str, device, args, case_deadline: float, mm: dict):
    """Training figures of ``model`` (preset ``preset``) in ``prec_name`` (module doc, 2)."""
    import torch

    from aiayn.batching import Batch
    from aiayn.config import TrainConfig
    from aiayn.model import PRESETS
    from aiayn.model_info import train_flops
    from aiayn.train.flops import gpu_peak_flops
    from aiayn.train.precision import select_precision
    from aiayn.train.trainer import Trainer
    from aiayn.vocab import PAD
    from bench.bench_train import make_batch

    cfg = PRESETS[preset]
    precision = select_precision(prec_name, device.type)  # ConfigError: not on this device
    tcfg = TrainConfig(compile=args.compile, precision=prec_name)
    state: dict = {}

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
            state["trainer"].train_step([b])
        sync(device)

    def on_oom() -> None:
        state.pop("trainer", None)
        free_memory(device)
        new_trainer()

    new_trainer()
    size, failed = largest_fitting(args.max_tokens, try_size, on_oom, args.simulate_oom_above)
    if size is None:
        raise RuntimeError(f"no max_tokens in {sorted(args.max_tokens)} fits in memory")
    if device.type == "cuda":  # the peak of the size that fits, not of the failed tries
        torch.cuda.reset_peak_memory_stats(device)
    trainer, b = state["trainer"], batch_of(size)
    sync(device)
    t = time.perf_counter()
    trainer.train_step([b])
    sync(device)
    per_round = max(1, round(args.round_seconds / (time.perf_counter() - t)))
    rates: list[float] = []
    while len(rates) < args.rounds and (len(rates) < 2 or time.perf_counter() < case_deadline):
        sync(device)
        t = time.perf_counter()
        for _ in range(per_round):
            trainer.train_step([b])
        sync(device)
        rates.append(b.n_tgt_tokens * per_round / (time.perf_counter() - t))
    peak_mem = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    flops = train_flops(
        cfg, args.vocab, b.n_src_tokens, b.n_tgt_tokens, b.src.size(1), b.tgt_in.size(1)
    )
    flops_per_tok = flops / b.n_tgt_tokens
    tok = _stats(rates)
    where = (
        f"{preset} dims (N={cfg.encoder_layers}, d_model={cfg.d_model}, d_ff={cfg.d_ff}, "
        f"h={cfg.n_heads}), V={args.vocab}, {prec_name}; max_tokens {size} (batch "
        f"{b.src.size(0)}x{b.src.size(1)}, {b.n_tgt_tokens} target tokens), the largest of "
        f"{sorted(args.max_tokens, reverse=True)[:4]}... that fits"
        + (f" ({', '.join(map(str, failed))} did not)" if failed else "")
        + f"; Trainer.train_step, {per_round} steps x {len(rates)} rounds"
        + (f"; peak memory {peak_mem:.1f} GiB" if peak_mem is not None else "")
        + ("; torch.compile" if args.compile else "")
    )
    figs = [
        figure(
            f"train tokens/s {preset} {prec_name}",
            "target tokens/s",
            tok,
            notes=where,
            precision=prec_name,
        )
    ]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    peak = gpu_peak_flops(name, prec_name) if name else None
    if peak:
        figs.append(
            figure(
                f"MFU {preset} {prec_name} (datasheet peak)",
                "fraction of datasheet dense peak",
                {k: v * flops_per_tok / peak for k, v in tok.items()},
                notes=f"{flops / 1e9:.1f} GFLOP per step (aiayn.model_info.train_flops); "
                f"{name} {prec_name} dense peak {peak / 1e12:.0f} TFLOP/s",
                precision=prec_name,
            )
        )
    if mm:
        figs.append(
            figure(
                f"MFU {preset} {prec_name} (measured matmul)",
                f"fraction of measured {prec_name} matmul rate",
                {k: v * flops_per_tok / (mm["median"] * 1e12) for k, v in tok.items()},
                notes=f"{flops / 1e9:.1f} GFLOP per step / step time / measured "
                f"{mm['median']:.3g} TFLOP/s"
                + ("" if peak else "; the peak used for MFU where the GPU is not in the table"),
                precision=prec_name,
            )
        )
    del state["trainer"], trainer, b
    return figs


# ----------------------------------------------------------------------------- decoding


def decode_case(device, args, deadline: float) -> list[dict]:
    """Beam-4 decoding figures (module doc, 3)."""
    import torch

    from aiayn.model import PRESETS, Transformer
    from aiayn.train.precision import select_precision
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
            ours, theirs, ratio = bd.compare(res, "aiayn", "marian", unit_i)
            figs.append(
                figure(
                    f"beam-4 decoding {unit} {args.decode_preset} {prec.name}: aiayn vs Marian",
                    unit,
                    ours,
                    peer=theirs,
                    peer_name="transformers MarianMTModel.generate(num_beams=4)",
                    ratio=ratio,
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
        self.started, self.t0 = now_utc(), time.perf_counter()
        self.benchmarks: dict = {}
        self.figures: list[dict] = []

    def case(self, name: str, fn: Callable[[], list[dict]]) -> object:
        """Run one case; record its figures, or its error (then go on)."""
        t = time.perf_counter()
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

            if isinstance(e, ConfigError):
                entry["skipped"] = str(e)
            else:
                traceback.print_exc()
                entry["error"] = f"{type(e).__name__}: {e}".strip().splitlines()[0][:500]
        entry["seconds"] = round(time.perf_counter() - t, 1)
        self.benchmarks[name] = entry
        print(f"== {name}: {entry.get('error') or entry.get('skipped') or 'ok'}", file=sys.stderr)
        self.write()
        return entry

    def write(self) -> str:
        report = build_report(
            kind="gpu" if self.machine.get("gpu") else "cpu",
            mode="tiny" if self.args.tiny else "default",
            command=shlex.join(["python", "-m", "bench.gpu", *self.argv]),
            machine=self.machine,
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
    from aiayn.train.precision import select_device

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
        from aiayn.train.flops import gpu_peak_flops
        from aiayn.train.precision import select_precision

        figs = []
        for p in args.precisions:
            try:
                dtype = select_precision(p, device.type).dtype
            except Exception:
                continue
            mm[p] = s = matmul_rate(device, dtype, args.matmul_n, seconds=args.matmul_seconds)
            name = machine["gpu"]["name"] if machine.get("gpu") else None
            peak = gpu_peak_flops(name, p) if name else None
            figs.append(
                figure(
                    f"matmul rate {p} ({args.matmul_n}^3)",
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
                    precision=p,
                )
            )
        return figs

    run.case("matmul", matmuls)

    # 2. training: the budget up to 65% of the run, shared by the remaining cases
    cases = [(p, q) for p in args.presets for q in args.precisions]
    train_end = clock.t0 + 0.65 * args.budget
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

    # 3. decoding, with what is left (keeping a margin)
    decode_deadline = clock.deadline - 20
    run.case("decode", lambda: decode_case(device, args, decode_deadline))
    md = run.write()
    print(md)
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}", file=sys.stderr)
    return 1 if any(b.get("error") for b in run.benchmarks.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
