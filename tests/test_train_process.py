"""The train stage as a process: SIGTERM/SIGINT save first, torchrun DDP with gloo on CPU."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from train_support import ROOT, make_shards, tiny_params

from aiayn.batching import make_batches
from aiayn.checkpoint import list_checkpoints, load_checkpoint
from aiayn.config import dump_params
from aiayn.dataset import ShardDataset
from aiayn.train.trainer import run_training


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_shards(tmp_path_factory.mktemp("data"))


def _stage(params, data, root: Path, **popen) -> subprocess.Popen:
    p = root / "params.yaml"
    p.write_text(dump_params(params))
    shards, tok = data
    cmd = [sys.executable, "-m", "stages.train", "--params", str(p)]
    cmd += ["--shards", str(shards), "--tokenizer", str(tok)]
    cmd += ["--checkpoints", str(root / "ckpt"), "--live", str(root / "live")]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.Popen(cmd, cwd=root, env=env, text=True, **popen)


def test_sigterm_saves_a_checkpoint_then_exits_nonzero(data, tmp_path):
    # SIGINT takes the same path (StopRequest, tested in-process in test_train_units.py).
    sig, code = signal.SIGTERM, 143
    params = tiny_params(max_steps=100_000, save_every=100_000, eval_every=0, log_every=1)
    proc = _stage(params, data, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    metrics = tmp_path / "live" / "metrics.json"
    deadline = time.monotonic() + 90
    logged = None
    while logged is None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        try:  # dvclive rewrites the file in place: retry until it is complete
            logged = json.loads(metrics.read_text())["step"]  # training is past this step
        except (OSError, ValueError, KeyError):
            pass
    assert proc.poll() is None and logged is not None, proc.communicate()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err[-2000:]
    assert f"{signal.Signals(sig).name} received" in err
    assert "checkpoint saved, rerun to resume" in out
    (step, path), *_ = list_checkpoints(tmp_path / "ckpt")
    state = load_checkpoint(path)
    assert logged <= step < 100_000 and state["step"] == step
    assert state["sampler"][0]["position"] > 0


def _even_budget(shards: Path) -> int:
    """A train.max_tokens giving an even number of batches, so one process and two ranks
    see the same batch layout (the sampler halves a batch to make the count divisible)."""
    ds = ShardDataset(shards, "train")
    for budget in range(128, 200, 4):
        if len(make_batches(ds.src_lens, ds.tgt_lens, budget)) % 2 == 0:
            return budget
    raise AssertionError("no budget with an even batch count")


def test_ddp_two_cpu_ranks_match_one_process(data, tmp_path):
    shards, tok = data
    budget = _even_budget(shards)
    # No dropout: the ranks draw their own dropout masks. Global batch: 2 micro-batches,
    # accumulated by one process or split over two ranks.
    params = tiny_params(
        model=dict(dropout=0.0, attention_dropout=0.0),
        max_steps=4,
        max_tokens=budget,
        tokens_per_step=2 * budget,
        save_every=4,
        eval_every=0,
        log_every=2,
    )
    ddp = dataclasses.replace(params, train=dataclasses.replace(params.train, nproc=2))
    run_training(ddp, shards, tok, tmp_path / "ddp" / "ckpt", tmp_path / "ddp" / "live")
    run_training(params, shards, tok, tmp_path / "one" / "ckpt", tmp_path / "one" / "live")
    a = load_checkpoint(list_checkpoints(tmp_path / "ddp" / "ckpt")[-1][1])
    b = load_checkpoint(list_checkpoints(tmp_path / "one" / "ckpt")[-1][1])
    assert a["step"] == b["step"] == 4 and a["world_size"] == 2
    # Both ranks held bitwise the same weights (the trainer also checks this at every save).
    assert len(a["rank_checksums"]) == 2 and len(set(a["rank_checksums"])) == 1
    assert a["tokens"] == b["tokens"]  # the same global batches
    for name, t in b["model"].items():
        torch.testing.assert_close(a["model"][name], t, rtol=1e-4, atol=1e-5, msg=name)
    # Rank 0 logged the curves.
    assert json.loads((tmp_path / "ddp" / "live" / "metrics.json").read_text())["step"] == 4
