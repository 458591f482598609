"""`dvc repro` with the train stage's `persist: true` outputs, in a throwaway git+DVC repo:
a changed param retrains from scratch (never resumes a stale checkpoint, never skips), a
raised max_steps continues, and an unchanged stage is skipped."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from train_support import ROOT, make_shards, tiny_params

from aiayn.checkpoint import list_checkpoints, load_checkpoint
from aiayn.config import dump_params

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{cmd}: {r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout + r.stderr


def _set_params(repo: Path, **train) -> None:
    (repo / "params.yaml").write_text(dump_params(tiny_params(**{"max_steps": 4, **train})))


def test_dvc_repro_persist_outputs_never_resume_stale_checkpoints(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    repo = tmp_path / "repo"
    shards, tok = make_shards(tmp_path / "inputs")
    shutil.copytree(shards, repo / "data" / "shards")
    shutil.copytree(tok.parent, repo / "data" / "tokenizer")
    ours = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["train"]
    stage = {
        "cmd": f"{sys.executable} -m stages.train",  # stages/ found through PYTHONPATH
        "deps": ["data/shards", "data/tokenizer"],
        "params": ours["params"],
        "outs": ours["outs"],  # the real declaration: persist: true
        "metrics": ours["metrics"],
    }
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"train": stage}}))
    _set_params(repo)
    _run(["git", "init", "-q"], repo)
    _run([sys.executable, "-m", "dvc", "init", "-q"], repo)
    _run([sys.executable, "-m", "dvc", "config", "core.analytics", "false"], repo)

    out = _run([sys.executable, "-m", "dvc", "repro"], repo)
    assert "starting fresh" in out
    first = load_checkpoint(list_checkpoints(repo / "data" / "checkpoints")[-1][1])
    assert first["step"] == 4

    _set_params(repo, lr_scale=0.5)  # DVC reruns the stage; the checkpoints persist
    out = _run([sys.executable, "-m", "dvc", "repro"], repo)
    assert "starting fresh" in out and "stale checkpoint" in out and "nothing to train" not in out
    second = load_checkpoint(list_checkpoints(repo / "data" / "checkpoints")[-1][1])
    assert second["step"] == 4 and second["fingerprint"] != first["fingerprint"]

    _set_params(repo, lr_scale=0.5, max_steps=6)
    out = _run([sys.executable, "-m", "dvc", "repro"], repo)
    assert "resuming from" in out and "(step 4)" in out
    third = load_checkpoint(list_checkpoints(repo / "data" / "checkpoints")[-1][1])
    assert third["step"] == 6 and third["fingerprint"] == second["fingerprint"]

    out = _run([sys.executable, "-m", "dvc", "repro"], repo)
    assert "didn't change, skipping" in out
