"""One micro ``dvc repro`` shared by the DVC experience tests (experiments, plots, remotes).

:func:`micro_run` builds a micro project once per test session (``make_project`` of the
end-to-end test, a committed ``dvc repro``) and hands each caller its own copy, so tests can
run experiments or clone the repository without seeing each other's changes.

The configuration is the end-to-end test's ``MICRO`` trained a little longer, and with a
lower learning rate, so that the model translates *something* (sacreBLEU > 0 with sacreBLEU's
default exp smoothing) and a beam-size change moves BLEU: the experiments tests need a BLEU
change to show. The values that decide that are pinned here (not taken from the demo's
params.yaml, which is tuned for another size). One CPU thread: tiny models are faster that
way, and a busy machine does not slow them down further by thread contention.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from test_pipeline_e2e import MICRO, make_project

BIN = Path(sys.executable).parent

DVC_MICRO = {
    **MICRO,
    "model": {**MICRO["model"], "d_model": 64, "d_ff": 128, "norm": "post"},
    "train": {
        **MICRO["train"],
        "precision": "fp32",
        "max_steps": 150,
        "lr_scale": 0.2,
        "warmup_steps": 20,
        "save_every": 50,
        "keep_last": 2,
        "eval_every": 50,
        "log_every": 10,
        "threads": 1,
    },
}

STAGES = ["download", "clean", "tokenize", "shard", "train", "average", "translate", "score"]


def env() -> dict[str, str]:
    """The environment for dvc/git/aiayn subprocesses: our venv first, one thread."""
    e = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", OMP_NUM_THREADS="1")
    e.pop("VIRTUAL_ENV", None)
    return e


def run(
    cmd: list[str], cwd: Path, *, ok: bool = True, timeout: int = 600, **kwargs
) -> subprocess.CompletedProcess:
    """Run ``cmd`` in ``cwd``; with ``ok`` (the default) a non-zero exit fails the test."""
    p = subprocess.run(
        cmd,
        cwd=cwd,
        env=kwargs.pop("env", None) or env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )
    if ok and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def out(cmd: list[str], cwd: Path, **kwargs) -> str:
    """stdout + stderr of a command that must succeed."""
    p = run(cmd, cwd, **kwargs)
    return p.stdout + p.stderr


def commit_all(repo: Path, message: str) -> None:
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", message], repo)


def micro_run(tmp_path_factory, name: str) -> Path:
    """A private copy of the micro project after a committed ``dvc repro``.

    The first call in a session builds it (about a minute on two cores); later calls copy it.
    """
    base = tmp_path_factory.getbasetemp() / "dvc-micro-run"
    done = base / "proj" / "dvc.lock"
    if not done.exists():
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir()
        proj = make_project(base, DVC_MICRO)
        run(["dvc", "repro"], proj, timeout=900)
        commit_all(proj, "micro run")
    dest = tmp_path_factory.mktemp(name) / "proj"
    shutil.copytree(base / "proj", dest, symlinks=True)
    return dest


def metrics(repo: Path) -> dict:
    return json.loads((repo / "reports" / "metrics.json").read_text())
