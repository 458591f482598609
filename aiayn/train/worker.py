"""A torchrun worker of the train stage: ``python -m aiayn.train.worker PARAMS SHARDS TOKENIZER
CHECKPOINTS LIVE``.

:func:`aiayn.train.distributed.launch` starts ``train.nproc`` of these under torchrun; each
calls :func:`aiayn.train.trainer.run_training`, which sees the torchrun environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``) and trains one rank. Its own module, so that the launcher
(imported by the trainer) does not import the trainer back.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aiayn.cli_util import fail, run_main
from aiayn.config import load_params
from aiayn.train.trainer import run_training

USAGE = "usage: python -m aiayn.train.worker PARAMS SHARDS TOKENIZER CHECKPOINTS LIVE"


def main(argv: list[str] | None = None) -> None:
    """Train one rank with the params file and paths in ``argv`` (default: the command line)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 5:
        fail(USAGE)
    params, shards, tokenizer, checkpoints, live = argv
    run_main(
        lambda: run_training(
            load_params(params), Path(shards), Path(tokenizer), Path(checkpoints), Path(live)
        )
    )


if __name__ == "__main__":
    main()
