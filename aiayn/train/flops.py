"""Peak FLOP rates for model FLOPs utilisation (MFU).

MFU = (model training FLOPs per target token x target tokens per second) / (peak FLOP/s x
number of devices). The model's FLOPs per token come from :mod:`aiayn.model_info`; the peak
is the vendor's dense (no sparsity) tensor-core figure for the precision in use on known
GPUs, and a measured float32 matrix-multiply rate on CPUs.
"""

from __future__ import annotations

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


def measure_matmul_flops(n: int = 512, dtype=None, seconds: float = 0.3) -> float:
    """Measured FLOP/s of ``n x n`` float32 matrix products on the CPU (best of several runs)."""
    import time

    import torch

    dtype = dtype or torch.float32
    g = torch.Generator().manual_seed(0)  # never touch the global RNG (resume is bitwise)
    a = torch.randn(n, n, dtype=dtype, generator=g)
    b = torch.randn(n, n, dtype=dtype, generator=g)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    reps = 4
    deadline = time.perf_counter() + seconds
    while True:
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b)
        best = min(best, (time.perf_counter() - t0) / reps)
        if time.perf_counter() > deadline:
            break
    return 2.0 * n**3 / best


def peak_flops(device, precision: str) -> tuple[float | None, str]:
    """(peak FLOP/s per device, where the figure comes from) for a torch device."""
    if device.type == "cuda":
        import torch

        name = torch.cuda.get_device_name(device)
        peak = gpu_peak_flops(name, precision)
        return peak, (f"{name} datasheet" if peak else f"{name}: unknown peak")
    return measure_matmul_flops(), "measured fp32 matmul rate"
