"""Device and numeric precision selection (``train.device``, ``train.precision``).

``precision: auto`` picks

- ``bf16`` autocast on CUDA GPUs with native bfloat16 (compute capability >= 8.0: A100, L4,
  A10, RTX 30xx/40xx, H100, ...),
- ``fp16`` autocast with dynamic loss scaling (:class:`torch.amp.GradScaler`) on older CUDA
  GPUs (T4 7.5, V100 7.0, P100 6.0),
- ``fp32`` on CPU.

``precision: mixed`` is ``auto`` on GPUs and ``bf16`` autocast on CPU: mixed precision
wherever torch has it. The demo uses it: on CPUs with AMX or AVX512-BF16 it trains 2-3x
faster than fp32, and the same params.yaml still runs on a T4 (fp16), where an explicit
``bf16`` is refused.

Explicit ``fp32``/``fp16``/``bf16`` are honoured, or refused with a one-line error where the
hardware cannot do them (fp16 on CPU; bf16 on a GPU older than compute capability 8.0, where
it would only be emulated). ``bf16`` on CPU is allowed (CPU autocast supports it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiayn.errors import ConfigError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Precision:
    """The numeric recipe for training: ``name`` in fp32/fp16/bf16."""

    name: str
    device_type: str  # "cpu" or "cuda"

    @property
    def dtype(self) -> torch.dtype:
        import torch

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
        import contextlib

        import torch

        if not self.autocast:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)


def select_device(requested: str, local_rank: int = 0, key: str = "train.device"):
    """``torch.device`` for ``auto``/``cpu``/``cuda``; one GPU per local rank."""
    import torch

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
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def select_precision(
    requested: str,
    device_type: str,
    capability: tuple[int, int] | None = None,
    key: str = "train.precision",
) -> Precision:
    """Resolve ``requested`` (auto/mixed/fp32/fp16/bf16) for a device.

    Args:
        requested: the params value.
        device_type: "cpu" or "cuda".
        capability: the GPU's CUDA compute capability (major, minor); queried from the
            current device when None and ``device_type`` is cuda.
        key: the params key named in errors.
    """
    if device_type == "cuda" and capability is None:
        import torch

        capability = torch.cuda.get_device_capability()
    native_bf16 = device_type == "cuda" and capability is not None and capability >= (8, 0)
    if requested in ("auto", "mixed"):
        if device_type == "cpu":
            return Precision("fp32" if requested == "auto" else "bf16", "cpu")
        return Precision("bf16" if native_bf16 else "fp16", device_type)
    if requested == "fp16" and device_type == "cpu":
        raise ConfigError(f"{key} is fp16, which needs a CUDA GPU; use fp32, bf16 or auto on CPU")
    if requested == "bf16" and device_type == "cuda" and not native_bf16:
        major, minor = capability
        raise ConfigError(
            f"{key} is bf16 but this GPU (compute capability {major}.{minor}) has no native "
            f"bfloat16; use fp16 or auto"
        )
    return Precision(requested, device_type)
