"""Data parallelism: torchrun launch, process groups, and small collectives.

One node, N processes: ``train.nproc: N`` (N > 1) makes :func:`aiayn.train.trainer.run_training`
call :func:`launch`, which runs ``python -m torch.distributed.run --standalone
--nproc_per_node=N -m aiayn.train.worker <params> <shards> <tokenizer> <checkpoints>
<live>``; each worker (:mod:`aiayn.train.worker`) calls ``run_training`` again, which sees
the torchrun environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) and trains one rank.

Several nodes: start the stage under torchrun yourself on every node, e.g.
``torchrun --nnodes=2 --node-rank=0 --nproc-per-node=8 --rdzv-endpoint=host:29500
stages/train.py``; inside torchrun ``train.nproc`` is ignored and the world size comes from
the environment.

Backends: NCCL when training on CUDA, gloo on CPU. Rank 0 writes checkpoints and logs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.distributed as dist

from aiayn.config import dump_params
from aiayn.errors import AiaynError

# The module torchrun runs in each worker process (named, not imported: it imports the trainer).
WORKER = "aiayn.train.worker"


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def under_launcher() -> bool:
    """True inside a torchrun (or torch.distributed.launch) worker."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def dist_env() -> DistEnv:
    """The rank, local rank and world size from the torchrun environment (1 process if none)."""
    if not under_launcher():
        return DistEnv()
    try:
        return DistEnv(
            rank=int(os.environ["RANK"]),
            local_rank=int(os.environ.get("LOCAL_RANK", "0")),
            world_size=int(os.environ["WORLD_SIZE"]),
        )
    except ValueError as e:
        raise AiaynError(f"bad torchrun environment (RANK/LOCAL_RANK/WORLD_SIZE): {e}") from None


def init_process_group(env: DistEnv, device) -> None:
    """Join the job's process group: NCCL on CUDA, gloo on CPU (no-op for one process)."""
    if not env.distributed or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group(backend=backend, rank=env.rank, world_size=env.world_size, **kwargs)


def destroy_process_group() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(t):
    """Sum a tensor over ranks in place (returns it); identity for one process."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_gather_objects(obj: Any, env: DistEnv) -> list:
    """A list with every rank's ``obj`` (rank order); ``[obj]`` for one process."""
    if not env.distributed:
        return [obj]

    out: list = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def peer_failure(e: BaseException) -> bool:
    """Whether ``e`` says that another rank is gone (its process or node stopped, or the
    network between them failed), as gloo and NCCL report it."""
    dist_error = getattr(dist, "DistError", ())
    if dist_error and isinstance(e, dist_error):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and any(
        s in text for s in ("gloo", "NCCL", "Connection reset by peer", "Connection closed")
    )


# ----------------------------------------------------------------------------- launcher


def torchrun_command(nproc: int, args: list[str]) -> list[str]:
    """The command line that starts ``nproc`` workers of this module on this node."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        WORKER,
        *args,
    ]


def launch(params, shards: Path, tokenizer: Path, checkpoints: Path, live: Path) -> None:
    """Run training in ``params.train.nproc`` torchrun workers and wait for them.

    SIGINT and SIGTERM are forwarded to torchrun, which forwards them to the workers; they
    save a checkpoint and exit. Raises SystemExit with the workers' failure code.
    """
    nproc = params.train.nproc
    with tempfile.TemporaryDirectory(prefix="aiayn-torchrun-") as tmp:
        params_file = Path(tmp) / "params.yaml"
        params_file.write_text(dump_params(params), encoding="utf-8")
        args = [str(params_file), str(shards), str(tokenizer), str(checkpoints), str(live)]
        cmd = torchrun_command(nproc, args)
        print(f"launching {nproc} processes: {' '.join(cmd)}", flush=True)
        proc = subprocess.Popen(cmd)
        received: list[int] = []

        def forward(signum, _frame):
            received.append(signum)
            proc.send_signal(signum)

        old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            rc = proc.wait()
        finally:
            for s, h in old.items():
                signal.signal(s, h)
    if received:
        raise SystemExit(128 + received[0])
    if rc != 0:
        raise AiaynError(f"torchrun training workers failed (exit code {rc}); see their output")
