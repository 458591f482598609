"""The train stage on CPUs of both kinds: precision follows the hardware (with its reason in
the log), an explicit bf16 on a CPU without fast bf16 is refused before anything is written,
and model FLOPs utilisation above 1 never reaches the metrics."""

from __future__ import annotations

import json

import pytest
from train_support import FAST_BF16, SLOW_BF16, make_shards, tiny_params

from aiayn.checkpoint import list_checkpoints, load_checkpoint
from aiayn.errors import ConfigError
from aiayn.train.trainer import run_training


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_shards(tmp_path_factory.mktemp("data"))


def _precision_of_last_checkpoint(ckpt) -> str:
    return load_checkpoint(list_checkpoints(ckpt)[-1][1])["precision"]


@pytest.mark.parametrize(
    "probe, want, reason",
    [
        (
            SLOW_BF16,
            "fp32",
            "this CPU has no native bf16: bf16 matmul 0.8 vs fp32 57 GFLOP/s on one core",
        ),
        (
            FAST_BF16,
            "bf16",
            "native bf16 on this CPU (AMX): bf16 matmul 600 vs fp32 250 GFLOP/s on one core",
        ),
    ],
)
def test_mixed_follows_the_cpu_and_says_why(data, tmp_path, capsys, cpu_bf16, probe, want, reason):
    cpu_bf16(probe)
    ckpt, live = tmp_path / "ckpt", tmp_path / "live"
    run_training(tiny_params(max_steps=2, precision="mixed"), *data, ckpt, live)
    out = capsys.readouterr().out
    assert f"precision: {want} ({reason})\n" in out
    assert _precision_of_last_checkpoint(ckpt) == want


def test_explicit_bf16_on_a_slow_bf16_cpu_is_refused_before_writing(data, tmp_path, cpu_bf16):
    cpu_bf16(SLOW_BF16)
    ckpt, live = tmp_path / "ckpt", tmp_path / "live"
    with pytest.raises(ConfigError, match=r"train.precision is bf16, but bf16 runs 71x slower"):
        run_training(tiny_params(max_steps=2, precision="bf16"), *data, ckpt, live)
    assert not ckpt.exists() and not live.exists()


def test_mfu_above_one_is_never_logged(data, tmp_path, capsys, monkeypatch):
    # A peak measured at a busy moment: 1 kFLOP/s makes any throughput look like MFU >> 1.
    monkeypatch.setattr("aiayn.train.trainer.peak_flops", lambda *a: (1e3, "measured, busy"))
    ckpt, live = tmp_path / "ckpt", tmp_path / "live"
    run_training(tiny_params(max_steps=3, log_every=1), *data, ckpt, live)
    metrics = json.loads((live / "metrics.json").read_text())
    assert "mfu" not in metrics["train"] and metrics["train"]["tokens_per_s"] > 0
    assert not (live / "plots" / "metrics" / "train" / "mfu.tsv").exists()
    err = capsys.readouterr().err
    assert err.count("model FLOPs utilisation") == 1  # warned once, not at every log step
