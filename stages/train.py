"""Stage ``train``: train the Transformer; resumable, checkpointed, logged with dvclive."""

from pathlib import Path
from typing import Annotated

import typer

from aiayn import paths
from aiayn.cli_util import new_app, run

app = new_app()


@app.command()
def main(
    params: Annotated[Path, typer.Option(help="params file")] = paths.PARAMS,
    shards: Annotated[Path, typer.Option(help="shard folder")] = paths.SHARDS,
    tokenizer: Annotated[Path, typer.Option(help="tokenizer file")] = paths.TOKENIZER,
    checkpoints: Annotated[Path, typer.Option(help="checkpoint folder")] = paths.CHECKPOINTS,
    live: Annotated[Path, typer.Option(help="dvclive folder")] = paths.TRAIN_LIVE,
) -> None:
    """Train on data/shards; checkpoints go to data/checkpoints, curves to reports/train."""
    from aiayn.config import load_params
    from aiayn.train.trainer import run_training

    run_training(load_params(params), shards, tokenizer, checkpoints, live)


if __name__ == "__main__":
    run(app)
