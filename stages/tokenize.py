"""Stage ``tokenize``: learn one BPE model shared by English and German."""

from pathlib import Path
from typing import Annotated

import typer

from aiayn import paths
from aiayn.cli_util import new_app, run

app = new_app()


@app.command()
def main(
    params: Annotated[Path, typer.Option(help="params file")] = paths.PARAMS,
    clean: Annotated[Path, typer.Option(help="clean data folder")] = paths.CLEAN,
    out: Annotated[Path, typer.Option(help="tokenizer file")] = paths.TOKENIZER,
    report: Annotated[Path, typer.Option(help="report (DVC metrics)")] = paths.TOKENIZER_REPORT,
) -> None:
    """Train the shared BPE tokenizer on data/clean; write reports/tokenizer.json."""
    from aiayn.config import load_params
    from aiayn.tokenizer import train_tokenizer

    train_tokenizer(load_params(params).tokenizer, clean, out, report)


if __name__ == "__main__":
    run(app)
