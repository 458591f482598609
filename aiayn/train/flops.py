"""Peak FLOP rates for model FLOPs utilisation (MFU).

MFU = (model training FLOPs per target token x target tokens per second) / (peak FLOP/s x
number of devices). The model's FLOPs per token come from :mod:`aiayn.model_info`; the peak
is the vendor's dense (no sparsity) tensor-core figure for the precision in use on known
GPUs, and on CPUs the measured matrix-multiply rate in the dtype training uses (fp32 or
bf16). A utilisation above 1 is never reported (:class:`Utilisation`).
"""

from __future__ import annotations

import sys

from aiayn.hardware import matmul_rates

# Dense peak TFLOP/s per GPU: (bf16/fp16 tensor cores, fp32 matmul as PyTorch runs it with
# TF32 enabled on Ampere and newer). Matched by substring of the device name, first match wins.
GPU_PEAK_TFLOPS: list[tuple[str, float, float]] = [
    ("H200", 989.0, 494.0),
    ("H100 PCIe", 756.0, 378.0),
    ("H100", 989.0, 494.0),
    ("GH200", 989.0, 494.0),
    ("B200", 2250.0, 1100.0),
    ("A100", 312.0, 156.0),
    ("L40S", 362.0, 183.0),
    ("L40", 181.0, 90.5),
    ("L4", 121.0, 60.0),
    ("A10G", 70.0, 35.0),
    ("A10", 125.0, 62.5),
    ("RTX 4090", 165.0, 82.6),
    ("RTX 3090", 71.0, 35.6),
    ("A6000", 155.0, 77.4),
    ("V100", 125.0, 15.7),
    ("T4", 65.0, 8.1),
    ("P100", 18.7, 9.3),
]


def gpu_peak_flops(name: str, precision: str) -> float | None:
    """Peak FLOP/s of a GPU called ``name`` in ``precision`` (fp32/fp16/bf16); None if unknown."""
    for key, half, fp32 in GPU_PEAK_TFLOPS:
        if key.lower() in name.lower():
            return (fp32 if precision == "fp32" else half) * 1e12
    return None


def measure_matmul_flops(precision: str = "fp32") -> float:
    """This CPU's matmul rate in FLOP/s in the dtype training computes in (``fp32`` or
    ``bf16``): ``1024 x 1024`` products, threads warmed, median of 7 interleaved rounds of
    ~0.1 s (:func:`aiayn.hardware.matmul_rates`), about a second in all."""
    import torch

    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    return matmul_rates((dtype,), n=1024, rounds=7, round_seconds=0.1)[dtype]


def peak_flops(device, precision: str) -> tuple[float | None, str]:
    """(peak FLOP/s per device, where the figure comes from) for a torch device."""
    if device.type == "cuda":
        import torch

        name = torch.cuda.get_device_name(device)
        peak = gpu_peak_flops(name, precision)
        return peak, (f"{name} datasheet" if peak else f"{name}: unknown peak")
    dtype = "bf16" if precision == "bf16" else "fp32"
    return measure_matmul_flops(dtype), f"measured {dtype} matmul rate"


class Utilisation:
    """Model FLOPs utilisation from a throughput: ``flops_per_token x tokens/s / (peak x
    devices)``. A value above 1 means the peak was measured low (a busy moment on a CPU) or
    the datasheet is wrong: it is never returned; the first one is reported once on
    stderr and that figure is left out (None)."""

    def __init__(self, flops_per_token: float, peak: float | None, devices: int = 1):
        self.flops_per_token = flops_per_token
        self.peak = peak
        self.devices = devices
        self.warned = False

    def __call__(self, tokens_per_s: float) -> float | None:
        if not self.peak:
            return None
        mfu = self.flops_per_token * tokens_per_s / (self.peak * self.devices)
        if mfu <= 1.0:
            return mfu
        if not self.warned:
            self.warned = True
            print(
                f"warning: model FLOPs utilisation {mfu:.2f} > 1 against a peak of "
                f"{self.peak / 1e12:.3f} TFLOP/s per device: the peak is wrong (measured at a "
                "busy moment?); utilisation is not logged when above 1",
                file=sys.stderr,
                flush=True,
            )
        return None
