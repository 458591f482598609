"""Stage ``average``: average the last checkpoints into one weights-only model."""

from pathlib import Path
from typing import Annotated

import typer

from aiayn import paths
from aiayn.cli_util import new_app, run

app = new_app()


@app.command()
def main(
    params: Annotated[Path, typer.Option(help="params file")] = paths.PARAMS,
    checkpoints: Annotated[Path, typer.Option(help="checkpoint folder")] = paths.CHECKPOINTS,
    tokenizer: Annotated[Path, typer.Option(help="tokenizer file")] = paths.TOKENIZER,
    out: Annotated[Path, typer.Option(help="model folder")] = paths.MODEL,
) -> None:
    """Average the last `average.last` checkpoints into data/model."""
    from aiayn.average import average_checkpoints
    from aiayn.config import load_params

    average_checkpoints(load_params(params).average, checkpoints, tokenizer, out)


if __name__ == "__main__":
    run(app)
