"""What this machine's processors can do, measured rather than assumed.

- :func:`matmul_rates`: FLOP/s of square matrix products per dtype, measured robustly
  (thread pool warmed, the dtypes interleaved round by round so that load from other
  processes hits them alike, median of the rounds).
- :func:`native_bf16_isa` and :func:`probe_cpu_bf16`: whether this CPU multiplies bfloat16
  natively (AMX, AVX512-BF16, Arm BF16) *and* whether torch actually runs bf16 matmuls
  faster than fp32 here. A CPU without native bf16 runs them ~70x slower than fp32 (an
  AVX2-only AMD EPYC: 0.8 vs 57 GFLOP/s), and so does one whose native path is switched off
  (``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2``), which the flags alone cannot see.
- :func:`check_gpu_arch`: a GPU the installed torch build has no kernels for (a Colab K80,
  compute capability 3.7, under a current wheel) is a one-line error before training.
"""

from __future__ import annotations

import functools
import math
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

from aiayn.errors import ConfigError

# bf16 counts as fast on a CPU when its matmuls run at least this many times the fp32 rate
# (native bf16 is 2-4x; emulated bf16 is ~1/70x).
BF16_FAST_FACTOR = 1.25
# An explicit bf16 is refused when its matmuls run below this fraction of fp32's.
BF16_SLOW_FACTOR = 0.8
# Environment variables that narrow the instruction set torch uses (set both to emulate an
# AVX2-only CPU: ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2).
ISA_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")


def matmul_rates(
    dtypes: Sequence, n: int = 256, rounds: int = 5, round_seconds: float = 0.02
) -> dict:
    """FLOP/s of ``(n, n) @ (n, n)`` products on the CPU, per dtype: ``{dtype: median}``.

    The thread pool is warmed first (~0.05 s of fp32 products). Each round times, for every
    dtype in turn, enough products to take about ``round_seconds`` (calibrated from one
    product each, so a slow dtype costs one product per round, not seconds); the result is
    the median over ``rounds``. Never touches the global RNG (training resumes bitwise).
    """
    import torch

    g = torch.Generator().manual_seed(0)
    mats = {}
    for dt in dtypes:
        a = torch.randn(n, n, generator=g).to(dt)
        b = torch.randn(n, n, generator=g).to(dt)
        mats[dt] = (a, b, torch.empty(n, n, dtype=dt))

    def timed(dt, reps: int) -> float:
        a, b, out = mats[dt]
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b, out=out)
        return (time.perf_counter() - t0) / reps

    a32 = torch.randn(n, n, generator=g)
    deadline = time.perf_counter() + 0.05
    while time.perf_counter() < deadline:  # wake the thread pool
        torch.mm(a32, a32)
    reps = {}
    for dt in dtypes:
        timed(dt, 1)  # first call: kernel selection, packing buffers
        reps[dt] = max(1, math.ceil(round_seconds / max(timed(dt, 1), 1e-7)))
    times: dict = {dt: [] for dt in dtypes}
    for r in range(rounds):
        order = list(dtypes)[r % len(dtypes) :] + list(dtypes)[: r % len(dtypes)]
        for dt in order:
            times[dt].append(timed(dt, reps[dt]))
    return {dt: 2.0 * n**3 / statistics.median(ts) for dt, ts in times.items()}


def native_bf16_isa() -> str | None:
    """The CPU feature that multiplies bfloat16 natively, as the CPU reports it: ``AMX``,
    ``AVX512-BF16`` or ``Arm BF16``; None if it has none (AVX2-only x86, older Arm)."""
    import torch

    cpu = getattr(torch, "cpu", None)

    def has(name: str) -> bool:
        fn = getattr(cpu, name, None)
        try:
            return bool(fn()) if fn is not None else False
        except Exception:  # pragma: no cover - a torch build without the query
            return False

    if has("_is_amx_tile_supported"):
        return "AMX"
    if has("_is_avx512_bf16_supported"):
        return "AVX512-BF16"
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip().lower() == "features" and "bf16" in value.split():
                    return "Arm BF16"
    except OSError:
        pass
    return None


@dataclass(frozen=True)
class Bf16Probe:
    """What a CPU does with bfloat16: the native feature it reports (or None), the
    measured bf16 and fp32 matmul rates in FLOP/s, and the :data:`ISA_ENV` settings in
    force (``ATEN_CPU_CAPABILITY=avx2 ...``; empty when none)."""

    isa: str | None
    bf16_flops: float
    fp32_flops: float
    isa_env: str = ""

    @property
    def speedup(self) -> float:
        """bf16 rate / fp32 rate (> 1: bf16 is faster)."""
        return self.bf16_flops / self.fp32_flops

    @property
    def fast(self) -> bool:
        """Native bf16 that torch runs clearly faster than fp32 here."""
        return self.isa is not None and self.speedup >= BF16_FAST_FACTOR

    @property
    def slow(self) -> bool:
        """bf16 matmuls measured clearly slower than fp32 here (no native bf16, or its
        native path switched off: ~70x slower)."""
        return self.speedup < BF16_SLOW_FACTOR

    def rates(self) -> str:
        """``bf16 matmul 0.8 vs fp32 57 GFLOP/s on one core``."""
        return (
            f"bf16 matmul {_g(self.bf16_flops)} vs fp32 {_g(self.fp32_flops)} GFLOP/s on one core"
        )

    def summary(self) -> str:
        """Why bf16 is or is not used on this CPU, for the logs."""
        if self.isa is None:
            text = f"this CPU has no native bf16: {self.rates()}"
        elif self.fast:
            text = f"native bf16 on this CPU ({self.isa}): {self.rates()}"
        elif self.slow:
            text = f"bf16 is slower than fp32 here despite {self.isa}: {self.rates()}"
        else:
            text = f"bf16 is not clearly faster than fp32 here despite {self.isa}: {self.rates()}"
        return text + (f"; ISA limited by {self.isa_env}" if self.isa_env else "")


def _g(flops: float) -> str:
    gf = flops / 1e9
    return f"{gf:.1f}" if gf < 10 else f"{gf:.0f}"


@functools.cache
def probe_cpu_bf16() -> Bf16Probe:
    """:class:`Bf16Probe` of this CPU (about 0.3 s; measured once per process).

    Measured on one thread: what decides is the ratio of the two rates, a property of one
    core's instructions, and one thread keeps it when other processes hold the cores (there,
    a multi-threaded product waits on its slowest thread: a 0.2 ms fp32 product can take 100x
    longer, a 30 ms emulated bf16 one hardly changes, and the ratio says nothing)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rates = matmul_rates((torch.float32, torch.bfloat16))
    finally:
        torch.set_num_threads(threads)
    return Bf16Probe(
        native_bf16_isa(), rates[torch.bfloat16], rates[torch.float32], isa_env_settings()
    )


def isa_env_settings() -> str:
    """The :data:`ISA_ENV` variables set in this process, ``NAME=value`` joined by spaces."""
    return " ".join(f"{k}={os.environ[k]}" for k in ISA_ENV if os.environ.get(k))


# ----------------------------------------------------------------------------- GPUs


def gpu_arch_supported(capability: tuple[int, int], arch_list: Sequence[str]) -> bool:
    """Whether a torch build compiled for ``arch_list`` (``torch.cuda.get_arch_list()``:
    ``sm_75``, ``sm_90a``, ``compute_90``, ...) runs on a GPU of compute ``capability``.

    CUDA binaries (``sm_XY``) run on GPUs of the same major version and a minor version at
    least Y; PTX (``compute_XY``) is compiled at load time for any GPU of capability >= X.Y.
    An empty list (not a CUDA build) says nothing, so it counts as supported."""
    if not arch_list:
        return True
    for arch in arch_list:
        kind, _, num = arch.partition("_")
        digits = num.rstrip("abcdefghijklmnopqrstuvwxyz")
        if len(digits) < 2 or not digits.isdigit():
            continue
        built = (int(digits[:-1]), int(digits[-1]))
        if kind == "sm" and built[0] == capability[0] and built[1] <= capability[1]:
            return True
        if kind == "compute" and built <= tuple(capability):
            return True
    return False


def check_gpu_arch(
    index: int,
    name: str,
    capability: tuple[int, int],
    arch_list: Sequence[str],
    key: str = "train.device",
    build: str = "",
) -> None:
    """:class:`ConfigError` (one line) if the torch build cannot drive this GPU."""
    if gpu_arch_supported(capability, arch_list):
        return
    major, minor = capability
    raise ConfigError(
        f"GPU {index} ({name}) has compute capability {major}.{minor}, which this torch build"
        f"{f' ({build})' if build else ''} has no kernels for (it supports "
        f"{' '.join(arch_list)}); install a torch build that supports it, or set {key}: cpu"
    )
