"""The train stage on two "nodes": two torchrun agents on this machine (``--nnodes=2
--nproc-per-node=1``, c10d rendezvous on 127.0.0.1, gloo), exactly the multi-node launch the
README documents. Both ranks train the same model; a node stopped mid-run (SIGTERM to its
torchrun agent, as a preempted machine gets) stops the whole run with a saved checkpoint; the
resumed run ends bitwise where an uninterrupted one does."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from train_support import ROOT, make_shards, tiny_params

from aiayn.checkpoint import list_checkpoints, load_checkpoint
from aiayn.config import dump_params

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_shards(tmp_path_factory.mktemp("data"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _nodes(params, data, root: Path, run_id: str) -> list[subprocess.Popen]:
    """Start two torchrun agents (one process each) training into ``root``/ckpt, live."""
    root.mkdir(parents=True, exist_ok=True)
    p = root / "params.yaml"
    p.write_text(dump_params(params))
    shards, tok = data
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    procs = []
    for is_host in ("true", "false"):  # the first hosts the rendezvous store
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2"]
        cmd += ["--nproc-per-node=1", "--rdzv-backend=c10d", f"--rdzv-id={run_id}"]
        cmd += [f"--rdzv-endpoint=127.0.0.1:{port}", f"--rdzv-conf=is_host={is_host}"]
        cmd += ["--monitor-interval=0.5", "-m", "stages.train", "--params", str(p)]
        cmd += ["--shards", str(shards), "--tokenizer", str(tok)]
        cmd += ["--checkpoints", str(root / "ckpt"), "--live", str(root / "live")]
        procs.append(
            subprocess.Popen(
                cmd,
                cwd=root,
                env=env,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        )
        time.sleep(0.5)
    return procs


def _wait(procs: list[subprocess.Popen], timeout: float = 240) -> list[tuple[int, str, str]]:
    out = []
    for proc in procs:
        try:
            o, e = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                os.killpg(q.pid, signal.SIGKILL)
            raise
        out.append((proc.returncode, o, e))
    return out


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants (torchrun starts its workers in sessions of
    their own, so killing the agent's process group would leave them running)."""
    import psutil

    proc = psutil.Process(pid)
    for p in [*proc.children(recursive=True), proc]:
        p.kill()


def _train(params, data, root: Path, run_id: str) -> dict:
    """Both nodes to the end; the newest checkpoint."""
    results = _wait(_nodes(params, data, root, run_id))
    for code, _, err in results:
        assert code == 0, err[-3000:]
    return load_checkpoint(list_checkpoints(root / "ckpt")[-1][1])


def _params(max_steps: int):
    return tiny_params(max_steps=max_steps, save_every=2, eval_every=0, log_every=1)


def test_two_nodes_train_one_model_and_a_stopped_node_resumes_exactly(data, tmp_path):
    # 1. Interrupted: stop one node's agent once training is under way.
    stopped = tmp_path / "stopped"
    nodes = _nodes(_params(100_000), data, stopped, "stopped")
    metrics = stopped / "live" / "metrics.json"
    deadline = time.monotonic() + 180
    logged = None
    while (logged or 0) < 3 and all(p.poll() is None for p in nodes):
        assert time.monotonic() < deadline, "training did not start"
        time.sleep(0.1)
        try:  # dvclive rewrites the file in place: retry until it is complete
            logged = json.loads(metrics.read_text())["step"]
        except (OSError, ValueError, KeyError):
            pass
    assert all(p.poll() is None for p in nodes), _wait(nodes)
    nodes[1].send_signal(signal.SIGTERM)  # the second node is preempted
    results = _wait(nodes, timeout=120)
    assert all(code != 0 for code, _, _ in results)  # the run stopped on both nodes
    assert any("checkpoint saved, rerun to resume" in out for _, out, _ in results), results
    state = load_checkpoint(list_checkpoints(stopped / "ckpt")[-1][1])
    stop_step = int(state["step"])
    assert 3 <= stop_step < 100_000
    assert state["world_size"] == 2 and len(state["rng"]) == len(state["sampler"]) == 2
    # Both ranks held bitwise the same weights when it was saved.
    assert len(state["rank_checksums"]) == 2 and len(set(state["rank_checksums"])) == 1

    # 2. Resumed on two nodes up to a few steps further.
    end = stop_step + 3
    resumed = _train(_params(end), data, stopped, "resumed")
    assert resumed["step"] == end and len(set(resumed["rank_checksums"])) == 1

    # 3. The same number of steps without a stop, from scratch.
    straight = _train(_params(end), data, tmp_path / "straight", "straight")
    assert straight["step"] == end and len(set(straight["rank_checksums"])) == 1
    assert resumed["tokens"] == straight["tokens"]
    for name, t in straight["model"].items():
        assert torch.equal(resumed["model"][name], t), name


def test_a_node_lost_without_warning_stops_the_run_resumably(data, tmp_path):
    """SIGKILL of one node's agent and worker (a machine gone): the other node does not
    hang; the run ends non-zero and the newest periodic checkpoint resumes."""
    lost = tmp_path / "lost"
    nodes = _nodes(_params(100_000), data, lost, "lost")
    deadline = time.monotonic() + 180
    while len(list_checkpoints(lost / "ckpt")) < 2 if (lost / "ckpt").exists() else True:
        assert time.monotonic() < deadline and all(p.poll() is None for p in nodes)
        time.sleep(0.1)
    _kill_tree(nodes[1].pid)
    t0 = time.monotonic()
    results = _wait(nodes, timeout=120)
    assert time.monotonic() - t0 < 60  # gloo notices the closed connection: no hang
    code, _, err = results[0]
    assert code != 0
    # The surviving worker says what happened in one line (torchrun then adds its summary).
    assert "error: rank 0 lost the other training processes at step" in err
    assert "start the stage again on every node to resume" in err
    worker = [line for line in err.splitlines() if line.startswith("[rank")]
    assert not any("Traceback" in line for line in worker), "\n".join(worker[-20:])
    step = list_checkpoints(lost / "ckpt")[-1][0]
    resumed = _train(_params(step + 2), data, lost, "lost-resumed")
    assert resumed["step"] == step + 2 and len(set(resumed["rank_checksums"])) == 1
