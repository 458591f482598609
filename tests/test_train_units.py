"""Trainer building blocks at known values: label smoothing, lrate, precision, accumulation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from train_support import FAST_BF16, SLOW_BF16

from aiayn.errors import ConfigError
from aiayn.hardware import Bf16Probe
from aiayn.precision import select_precision
from aiayn.train.loss import label_smoothed_nll_loss
from aiayn.train.schedule import noam_lr
from aiayn.train.trainer import accumulation_steps

# ----------------------------------------------------------------------------- loss


def test_label_smoothing_hand_computed():
    # One token, V = 3, uniform logits: log p = -ln 3 everywhere, so every convention gives
    # ln 3. Skewed logits separate them: p = softmax([ln 2, 0, 0]) = (1/2, 1/4, 1/4).
    logits = torch.tensor([[math.log(2.0), 0.0, 0.0]])
    target = torch.tensor([1])
    eps = 0.1
    out = label_smoothed_nll_loss(logits, target, eps)
    nll = math.log(4.0)  # -log p(y=1)
    # q = (eps/2, 1-eps, eps/2): loss = -(0.05 ln 1/2 + 0.9 ln 1/4 + 0.05 ln 1/4)
    want = -(0.05 * math.log(0.5) + 0.9 * math.log(0.25) + 0.05 * math.log(0.25))
    assert out.nll.item() == pytest.approx(nll, rel=1e-6)
    assert out.loss.item() == pytest.approx(want, rel=1e-6)
    assert want == pytest.approx(1.95 * math.log(2.0), rel=1e-12)  # = 1.351637


def test_label_smoothing_ignores_padding_and_sums():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 7)
    target = torch.tensor([[5, 2, 0, 0], [3, 4, 6, 2]])  # 0 = pad
    out = label_smoothed_nll_loss(logits, target, 0.1)
    keep = target != 0
    one = [
        label_smoothed_nll_loss(logits[keep][i : i + 1], target[keep][i : i + 1], 0.1)
        for i in range(6)
    ]
    assert out.loss.item() == pytest.approx(sum(o.loss.item() for o in one), rel=1e-5)
    # Changing the logits at padded positions changes nothing.
    logits2 = logits.clone()
    logits2[0, 2:] = 100.0 * torch.randn(2, 7)
    out2 = label_smoothed_nll_loss(logits2, target, 0.1)
    assert out2.loss.item() == out.loss.item()


def test_label_smoothing_matches_torch_with_rescaled_eps():
    # Our eps over V-1 classes == torch's label_smoothing eps*V/(V-1) over V classes.
    torch.manual_seed(1)
    V, eps = 11, 0.1
    logits = torch.randn(3, 5, V)
    target = torch.randint(1, V, (3, 5))
    target[0, 3:] = 0
    ours = label_smoothed_nll_loss(logits, target, eps)
    ref = F.cross_entropy(
        logits.reshape(-1, V),
        target.reshape(-1),
        ignore_index=0,
        reduction="sum",
        label_smoothing=eps * V / (V - 1),
    )
    assert ours.loss.item() == pytest.approx(ref.item(), rel=1e-5)


def test_label_smoothing_zero_is_cross_entropy():
    torch.manual_seed(2)
    logits = torch.randn(4, 6, 13, requires_grad=True)
    target = torch.randint(0, 13, (4, 6))
    ours = label_smoothed_nll_loss(logits, target, 0.0)
    ref = F.cross_entropy(
        logits.reshape(-1, 13), target.reshape(-1), ignore_index=0, reduction="sum"
    )
    assert ours.loss.item() == pytest.approx(ref.item(), rel=1e-6)
    assert ours.nll.item() == pytest.approx(ref.item(), rel=1e-6)
    (g1,) = torch.autograd.grad(ours.loss, logits)
    (g2,) = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(g1, g2)


def test_smoothed_loss_lower_bound_is_entropy_of_q():
    # The best prediction is p = q, where the loss equals the entropy of q.
    V, eps = 5, 0.1
    q = torch.full((V,), eps / (V - 1))
    q[2] = 1 - eps
    out = label_smoothed_nll_loss(q.log()[None], torch.tensor([2]), eps)
    entropy = -(q * q.log()).sum().item()
    assert out.loss.item() == pytest.approx(entropy, rel=1e-6)


# ----------------------------------------------------------------------------- schedule


def test_schedule_known_values():
    # Transformer base: d_model 512, warmup 4000; peak at step 4000 = (512 * 4000)^-0.5.
    assert noam_lr(4000, 512, 4000) == pytest.approx(6.987712e-4, rel=1e-6)
    assert noam_lr(1, 512, 4000) == pytest.approx(512**-0.5 * 4000**-1.5, rel=1e-12)
    assert noam_lr(2000, 512, 4000) == pytest.approx(6.987712e-4 / 2, rel=1e-6)  # linear
    assert noam_lr(16000, 512, 4000) == pytest.approx(6.987712e-4 / 2, rel=1e-6)  # 1/sqrt
    assert noam_lr(100000, 512, 4000) == pytest.approx(1.397542e-4, rel=1e-6)
    assert noam_lr(4000, 1024, 4000) == pytest.approx(4.941059e-4, rel=1e-6)  # big
    assert noam_lr(4000, 512, 4000, lr_scale=2.0) == pytest.approx(2 * 6.987712e-4, rel=1e-6)
    with pytest.raises(ValueError):
        noam_lr(0, 512, 4000)


def test_schedule_peaks_at_warmup():
    lrs = [noam_lr(s, 256, 200) for s in range(1, 1000)]
    assert max(range(len(lrs)), key=lrs.__getitem__) + 1 == 200


# ----------------------------------------------------------------------------- precision


@pytest.mark.parametrize(
    "requested, device, capability, want",
    [
        ("auto", "cpu", None, "fp32"),
        ("auto", "cuda", (9, 0), "bf16"),  # H100
        ("auto", "cuda", (8, 0), "bf16"),  # A100
        ("auto", "cuda", (7, 5), "fp16"),  # T4
        ("auto", "cuda", (7, 0), "fp16"),  # V100
        ("auto", "cuda", (6, 0), "fp16"),  # P100
        ("fp32", "cuda", (8, 0), "fp32"),
        ("fp16", "cuda", (8, 6), "fp16"),
        ("fp32", "cpu", None, "fp32"),
        ("mixed", "cuda", (7, 5), "fp16"),  # the demo's mixed runs on a T4 ...
        ("mixed", "cuda", (8, 0), "bf16"),
    ],
)
def test_precision_selection(requested, device, capability, want, cpu_bf16):
    cpu_bf16(SLOW_BF16)  # none of these may depend on the CPU
    p = select_precision(requested, device, capability)
    assert p.name == want
    assert p.loss_scaling == (want == "fp16")
    assert p.autocast == (want != "fp32")
    assert p.reason and "\n" not in p.describe()


def test_mixed_and_bf16_on_cpu_follow_the_probe(cpu_bf16):
    cpu_bf16(FAST_BF16)  # AMX: bf16 matmuls 2.4x fp32
    p = select_precision("mixed", "cpu")
    assert p.name == "bf16" and p.autocast
    assert p.describe() == (
        "precision: bf16 (native bf16 on this CPU (AMX): bf16 matmul 600 vs fp32 250 GFLOP/s on one core)"
    )
    assert select_precision("bf16", "cpu").name == "bf16"
    cpu_bf16(SLOW_BF16)  # AVX2 only: bf16 70x slower
    p = select_precision("mixed", "cpu")
    assert p.name == "fp32" and not p.autocast
    assert p.describe() == (
        "precision: fp32 (this CPU has no native bf16: bf16 matmul 0.8 vs fp32 57 GFLOP/s on one core)"
    )
    # native bf16 that torch does not use (its fast path switched off): not fast, slow
    cpu_bf16(Bf16Probe("AVX512-BF16", 1.8e9, 140e9))
    assert select_precision("mixed", "cpu").name == "fp32"
    with pytest.raises(ConfigError, match="78x slower"):
        select_precision("bf16", "cpu")
    # native and about as fast as fp32: mixed keeps fp32, an explicit bf16 is honoured
    cpu_bf16(Bf16Probe("AVX512-BF16", 100e9, 95e9))
    assert select_precision("mixed", "cpu").name == "fp32"
    assert select_precision("bf16", "cpu").name == "bf16"


def test_explicit_bf16_on_a_slow_bf16_cpu_is_refused(cpu_bf16):
    cpu_bf16(SLOW_BF16)
    for key in ("train.precision", "translate.precision"):
        with pytest.raises(ConfigError) as e:
            select_precision("bf16", "cpu", key=key)
        msg = str(e.value)
        assert "\n" not in msg
        assert msg.startswith(f"{key} is bf16, but bf16 runs 71x slower than fp32 on this CPU")
        assert "bf16 matmul 0.8 vs fp32 57 GFLOP/s on one core" in msg
        assert f"set {key}: mixed (bf16 only where fast) or fp32" in msg


def test_precision_impossible_is_a_clear_error():
    with pytest.raises(ConfigError, match="train.precision is fp16.*CUDA"):
        select_precision("fp16", "cpu")
    with pytest.raises(ConfigError, match=r"bf16.*compute capability 7\.5"):
        select_precision("bf16", "cuda", (7, 5))


def test_precision_queries_the_gpu_when_not_told(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (7, 0))
    assert select_precision("auto", "cuda").name == "fp16"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (8, 9))
    assert select_precision("auto", "cuda").name == "bf16"


# ----------------------------------------------------------------------------- accumulation


def test_accumulation_steps():
    assert accumulation_steps(25000, 4096, 1) == 7  # ceil(6.1)
    assert accumulation_steps(25000, 4096, 8) == 1
    assert accumulation_steps(25000, 4096, 4) == 2
    assert accumulation_steps(2048, 2048, 1) == 1
    assert accumulation_steps(100, 4096, 2) == 1


def test_trainer_imports_without_dvc_dvclive_sacremoses():
    # bench/gpu.sh runs where only torch, tokenizers, sacrebleu, typer and pandas exist.
    import subprocess
    import sys

    code = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("dvc", "dvclive", "sacremoses"):
            raise ImportError("blocked " + name)
sys.meta_path.insert(0, Block())
import aiayn.train.trainer, aiayn.checkpoint, aiayn.train.distributed, aiayn.train.live
from aiayn.train.live import TrainLog
log = TrainLog(sys.argv[1], None)  # warns, logs nothing
log.log(1, {"train/loss": 1.0})
print("ok", log.live)
"""
    r = subprocess.run(
        [sys.executable, "-c", code, "/nonexistent/live"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok None"
    assert "dvclive is not installed" in r.stderr


def test_stop_request_turns_signals_into_a_flag():
    import os
    import signal

    from aiayn.train.signals import StopRequest

    before = signal.getsignal(signal.SIGTERM)
    with StopRequest(verbose=False) as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.exit_code == 143
        with pytest.raises(KeyboardInterrupt):  # a Ctrl-C after that aborts at once
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is before
    with StopRequest(verbose=False, abort_on_repeat=False) as stop:  # torchrun workers
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.exit_code == 130
