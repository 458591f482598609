"""What the machine can do: the bf16 probe, GPU architectures, and MFU that cannot lie."""

from __future__ import annotations

import math
import statistics
import time

import pytest
import torch

from aiayn.errors import ConfigError
from aiayn.hardware import (
    Bf16Probe,
    check_gpu_arch,
    gpu_arch_supported,
    matmul_rates,
    native_bf16_isa,
    probe_cpu_bf16,
)
from aiayn.precision import select_device, select_precision
from aiayn.train import flops
from aiayn.train.flops import Utilisation

# torch 2.4-2.6 CUDA 12 wheels
CU12 = ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"]

# ----------------------------------------------------------------------------- GPUs


@pytest.mark.parametrize(
    "capability, arch_list, ok",
    [
        ((3, 7), CU12, False),  # Colab's K80 under a current wheel
        ((7, 5), CU12, True),  # T4
        ((8, 9), CU12, True),  # L4: sm_86 binaries run on 8.9 (same major, lower minor)
        ((10, 0), CU12, False),  # B200: no sm_10x and no PTX
        ((10, 0), CU12 + ["compute_90"], True),  # ... but PTX for 9.0 is compiled at load
        ((7, 5), ["sm_80", "compute_80"], False),  # PTX only runs on capability >= its own
        ((9, 0), ["sm_90a"], True),
        ((12, 0), ["sm_100", "sm_120"], True),
        ((6, 1), ["sm_60"], True),
        ((6, 0), ["sm_61"], False),
        ((3, 7), [], True),  # not a CUDA build: nothing to say
    ],
)
def test_gpu_arch_supported(capability, arch_list, ok):
    assert gpu_arch_supported(capability, arch_list) is ok


def test_unsupported_gpu_is_one_line_naming_it(monkeypatch):
    # Fake a K80 under a CUDA 12 build: select_device must stop before any kernel runs.
    cuda = torch.cuda
    monkeypatch.setattr(cuda, "is_available", lambda: True)
    monkeypatch.setattr(cuda, "device_count", lambda: 1)
    monkeypatch.setattr(cuda, "get_device_name", lambda *a: "Tesla K80")
    monkeypatch.setattr(cuda, "get_device_capability", lambda *a: (3, 7))
    monkeypatch.setattr(cuda, "get_arch_list", lambda: CU12)
    for requested in ("auto", "cuda"):
        with pytest.raises(ConfigError) as e:
            select_device(requested)
        msg = str(e.value)
        assert "\n" not in msg
        assert msg.startswith("GPU 0 (Tesla K80) has compute capability 3.7, which this torch")
        assert "sm_50 sm_60 sm_70 sm_75 sm_80 sm_86 sm_90" in msg
        assert msg.endswith("or set train.device: cpu")
    with pytest.raises(ConfigError, match="set translate.device: cpu"):
        select_device("auto", key="translate.device")
    assert select_device("cpu").type == "cpu"  # the way out
    monkeypatch.setattr(cuda, "get_device_capability", lambda *a: (7, 5))
    assert select_device("auto") == torch.device("cuda", 0)  # a T4 passes


def test_check_gpu_arch_names_the_build():
    with pytest.raises(ConfigError, match=r"this torch build \(torch 2\.13, CUDA 12\.6\) has"):
        check_gpu_arch(1, "Tesla K80", (3, 7), CU12, build="torch 2.13, CUDA 12.6")
    check_gpu_arch(0, "Tesla T4", (7, 5), CU12)  # no error


# ----------------------------------------------------------------------------- CPU bf16


def test_matmul_rates_measure_every_dtype_without_touching_the_rng(one_thread):
    torch.manual_seed(7)
    before = torch.get_rng_state()
    rates = matmul_rates((torch.float32, torch.bfloat16), n=64, rounds=3, round_seconds=0.002)
    assert torch.equal(torch.get_rng_state(), before)
    assert set(rates) == {torch.float32, torch.bfloat16}
    # even emulated bf16 on a core shared with ten other processes does > 1 MFLOP/s
    assert all(math.isfinite(r) and r > 1e6 for r in rates.values())


def test_probe_of_this_cpu_is_consistent():
    p = probe_cpu_bf16()
    assert p is probe_cpu_bf16()  # measured once per process
    assert p.isa == native_bf16_isa()
    assert p.fp32_flops > 1e9 and p.bf16_flops > 1e7
    assert not (p.fast and p.slow)
    if p.isa is None:  # no native bf16: never fast, whatever the timings said
        assert not p.fast and p.slow


def test_demo_precision_is_not_slower_than_fp32_here(demo_params):
    """The precision the demo's params resolve to on the machine running the tests trains
    at least about as fast as fp32 here, so no default can regress on some CPU kind unseen.

    Times a few demo-dimension training steps in both precisions, interleaved, on one
    thread (as the probe measures: steady when other processes hold the cores)."""
    from aiayn.model import Transformer

    prec = select_precision(demo_params.train.precision, "cpu")
    if prec.name == "fp32":
        return  # fp32 is the yardstick itself
    assert prec.name == "bf16" and probe_cpu_bf16().fast
    torch.manual_seed(0)
    model = Transformer(demo_params.model, 3000)
    src = torch.randint(4, 3000, (16, 24))
    tgt = torch.randint(4, 3000, (16, 25))

    def step(autocast: bool) -> float:
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logits = model(src, tgt[:, :-1])
        torch.nn.functional.cross_entropy(
            logits.float().flatten(0, 1), tgt[:, 1:].flatten()
        ).backward()
        model.zero_grad(set_to_none=True)
        return time.perf_counter() - t

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        step(True), step(False)  # warm-up
        times = {True: [], False: []}
        for _ in range(5):
            for ac in (True, False):
                times[ac].append(step(ac))
    finally:
        torch.set_num_threads(threads)
    chosen, fp32 = statistics.median(times[True]), statistics.median(times[False])
    assert (
        chosen <= 1.1 * fp32
    ), f"{prec.describe()}: a step takes {chosen:.3f} s vs fp32 {fp32:.3f} s"


# ----------------------------------------------------------------------------- MFU


def test_utilisation_above_one_is_never_returned(capsys):
    u = Utilisation(flops_per_token=1e9, peak=1e12, devices=2)
    assert u(1000.0) == pytest.approx(0.5)  # 1e12 FLOP/s used of 2e12
    assert capsys.readouterr().err == ""
    assert u(4500.0) is None  # 2.25: the peak was measured low
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "utilisation 2.25 > 1" in err
    assert u(9000.0) is None
    assert capsys.readouterr().err == ""  # warned once
    assert u(2000.0) == pytest.approx(1.0)
    assert Utilisation(1e9, None)(1000.0) is None  # unknown peak: no figure


def test_cpu_peak_is_measured_in_the_training_dtype(monkeypatch):
    seen = []

    def fake(dtypes, n, rounds, round_seconds):
        seen.append((dtypes, n, rounds, round_seconds))
        return {dtypes[0]: 123e9}

    monkeypatch.setattr(flops, "matmul_rates", fake)
    cpu = torch.device("cpu")
    assert flops.peak_flops(cpu, "bf16") == (123e9, "measured bf16 matmul rate")
    assert flops.peak_flops(cpu, "fp32") == (123e9, "measured fp32 matmul rate")
    assert [s[0] for s in seen] == [(torch.bfloat16,), (torch.float32,)]
    # long enough to be a peak: 1024^3 products, 7 rounds of 0.1 s
    assert all(s[1:] == (1024, 7, 0.1) for s in seen)


@pytest.mark.parametrize(
    "probe, fast, slow, summary",
    [
        (
            Bf16Probe(None, 0.8e9, 57e9),
            False,
            True,
            "this CPU has no native bf16: bf16 matmul 0.8 vs fp32 57 GFLOP/s on one core",
        ),
        (
            Bf16Probe("AMX", 600e9, 250e9),
            True,
            False,
            "native bf16 on this CPU (AMX): bf16 matmul 600 vs fp32 250 GFLOP/s on one core",
        ),
        (  # an AVX512-BF16 CPU run as an AVX2-only one
            Bf16Probe("AVX512-BF16", 1.8e9, 140e9, "ATEN_CPU_CAPABILITY=avx2"),
            False,
            True,
            "bf16 is slower than fp32 here despite AVX512-BF16: bf16 matmul 1.8 vs fp32 140 "
            "GFLOP/s on one core; ISA limited by ATEN_CPU_CAPABILITY=avx2",
        ),
        (
            Bf16Probe("AVX512-BF16", 100e9, 95e9),
            False,
            False,
            "bf16 is not clearly faster than fp32 here despite AVX512-BF16: bf16 matmul 100 vs "
            "fp32 95 GFLOP/s on one core",
        ),
        # never fast without a native feature, but not refused when measured fast
        (Bf16Probe(None, 200e9, 100e9), False, False, None),
    ],
)
def test_bf16_probe_verdicts(probe, fast, slow, summary):
    assert (probe.fast, probe.slow) == (fast, slow)
    if summary:
        assert probe.summary() == summary


def test_isa_env_settings_name_what_narrows_the_isa(monkeypatch):
    from aiayn.hardware import isa_env_settings

    for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        monkeypatch.delenv(k, raising=False)
    assert isa_env_settings() == ""
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    assert isa_env_settings() == "ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2"


def test_probe_sees_an_avx2_only_cpu_through_the_emulation():
    """Under ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`` (an AVX2-only CPU, whatever
    this one is) bf16 matmuls are emulated: mixed resolves to fp32, bf16 is refused."""
    import os
    import subprocess
    import sys

    code = (
        "from aiayn.precision import select_precision\n"
        "from aiayn.errors import ConfigError\n"
        "p = select_precision('mixed', 'cpu')\n"
        "print(p.describe())\n"
        "try:\n"
        "    select_precision('bf16', 'cpu')\n"
        "except ConfigError as e:\n"
        "    print('refused:', e)\n"
    )
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    r = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.splitlines()
    assert first.startswith("precision: fp32 (")
    assert first.endswith("ISA limited by ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2)")
    assert second.startswith("refused: train.precision is bf16, but bf16 runs ")
