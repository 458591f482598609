"""Device and numeric precision selection (``train.device``, ``train.precision``, and the
same rules for ``translate.device``, ``translate.precision``).

``precision: auto`` picks

- ``bf16`` autocast on CUDA GPUs with native bfloat16 (compute capability >= 8.0: A100, L4,
  A10, RTX 30xx/40xx, H100, ...),
- ``fp16`` autocast with dynamic loss scaling (:class:`torch.amp.GradScaler`) on older CUDA
  GPUs (T4 7.5, V100 7.0, P100 6.0),
- ``fp32`` on CPU.

``precision: mixed`` is ``auto`` on GPUs, and on a CPU ``bf16`` autocast only where bf16 is
fast: the CPU multiplies bf16 natively (AMX, AVX512-BF16) *and* a short timed probe
(:func:`aiayn.hardware.probe_cpu_bf16`) finds bf16 matmuls clearly faster than fp32 here;
otherwise ``fp32``. Without native bf16 (AVX2-only CPUs: most laptops, AMD EPYC before
Zen 4) bf16 runs ~70x slower than fp32. The demo uses ``mixed``: 2-3x faster than fp32 where
bf16 is native, fp32 elsewhere, and the same params.yaml still runs on a T4 (fp16).

Explicit ``fp32``/``fp16``/``bf16`` are honoured, or refused with a one-line error where the
hardware cannot do them well: fp16 on CPU; bf16 on a GPU older than compute capability 8.0
(it would only be emulated); bf16 on a CPU where the probe measures bf16 matmuls slower than
fp32 (the error names the measured rates and the key to change).

Every choice carries its reason (:attr:`Precision.reason`), which the train and translate
stages log in one line: ``precision: fp32 (this CPU has no native bf16: bf16 matmul 0.8 vs
fp32 57 GFLOP/s on one core)``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from aiayn.errors import ConfigError
from aiayn.hardware import Bf16Probe, check_gpu_arch, probe_cpu_bf16


@dataclass(frozen=True)
class Precision:
    """The numeric recipe for training: ``name`` in fp32/fp16/bf16."""

    name: str
    device_type: str  # "cpu" or "cuda"
    reason: str = ""  # why this precision, for the logs

    def describe(self) -> str:
        """One log line: ``precision: fp32 (this CPU has no native bf16: ...)``."""
        return f"precision: {self.name}" + (f" ({self.reason})" if self.reason else "")

    @property
    def dtype(self) -> torch.dtype:
        return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[self.name]

    @property
    def autocast(self) -> bool:
        """Whether forward passes run under ``torch.autocast``."""
        return self.name != "fp32"

    @property
    def loss_scaling(self) -> bool:
        """Whether a dynamic loss scaler is needed (fp16 only)."""
        return self.name == "fp16"

    def autocast_context(self):
        """``torch.autocast`` for this precision (a no-op context for fp32)."""
        if not self.autocast:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)


def select_device(requested: str, local_rank: int = 0, key: str = "train.device"):
    """``torch.device`` for ``auto``/``cpu``/``cuda``; one GPU per local rank."""
    if requested == "cpu":
        return torch.device("cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{key} is cuda but no CUDA GPU is available (use auto or cpu)")
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        if local_rank >= n:
            raise ConfigError(
                f"process {local_rank} needs GPU {local_rank} but only {n} are visible "
                f"(lower train.nproc)"
            )
        check_gpu_arch(
            local_rank,
            torch.cuda.get_device_name(local_rank),
            torch.cuda.get_device_capability(local_rank),
            torch.cuda.get_arch_list(),
            key=key,
            build=f"torch {torch.__version__}, CUDA {torch.version.cuda}",
        )
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def select_precision(
    requested: str,
    device_type: str,
    capability: tuple[int, int] | None = None,
    key: str = "train.precision",
    probe: Bf16Probe | None = None,
) -> Precision:
    """Resolve ``requested`` (auto/mixed/fp32/fp16/bf16) for a device (module docstring).

    Args:
        requested: the params value.
        device_type: "cpu" or "cuda".
        capability: the GPU's CUDA compute capability (major, minor); queried from the
            current device when None and ``device_type`` is cuda.
        key: the params key named in errors and reasons.
        probe: this CPU's bf16 probe; measured (once per process) when needed and None.
    """
    if device_type == "cuda" and capability is None:
        capability = torch.cuda.get_device_capability()
    if requested == "fp16" and device_type == "cpu":
        raise ConfigError(f"{key} is fp16, which needs a CUDA GPU; use fp32, bf16 or auto on CPU")
    if device_type == "cuda":
        major, minor = capability
        native_bf16 = tuple(capability) >= (8, 0)
        gpu = f"GPU compute capability {major}.{minor}"
        if requested in ("auto", "mixed"):
            if native_bf16:
                return Precision("bf16", "cuda", f"{key}: {requested}; {gpu} has native bf16")
            return Precision(
                "fp16",
                "cuda",
                f"{key}: {requested}; {gpu} has no native bf16: fp16 with loss scaling",
            )
        if requested == "bf16" and not native_bf16:
            raise ConfigError(
                f"{key} is bf16 but this GPU (compute capability {major}.{minor}) has no native "
                f"bfloat16; use fp16 or auto"
            )
        return Precision(requested, "cuda", f"as set in {key}")
    # CPU
    if requested == "fp32":
        return Precision("fp32", "cpu", f"as set in {key}")
    if requested == "auto":
        return Precision("fp32", "cpu", f"{key}: auto is fp32 on CPU; mixed uses bf16 where fast")
    probe = probe or probe_cpu_bf16()
    if requested == "mixed":
        return Precision("bf16" if probe.fast else "fp32", "cpu", probe.summary())
    if probe.slow:  # explicit bf16
        slower = 1 / probe.speedup
        times = f"{slower:.0f}" if slower >= 10 else f"{slower:.1f}"
        raise ConfigError(
            f"{key} is bf16, but bf16 runs {times}x slower than "
            f"fp32 on this CPU ({probe.summary()}); set {key}: mixed (bf16 only where fast) or fp32"
        )
    return Precision("bf16", "cpu", f"as set in {key}; {probe.summary()}")
