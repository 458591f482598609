"""Stage ``shard``: BPE-encode train/dev/test into length-sorted token-id shards."""

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
    tokenizer: Annotated[Path, typer.Option(help="tokenizer file")] = paths.TOKENIZER,
    out: Annotated[Path, typer.Option(help="shard folder")] = paths.SHARDS,
    report: Annotated[Path, typer.Option(help="report (DVC metrics)")] = paths.SHARD_REPORT,
) -> None:
    """Encode data/clean with the tokenizer into data/shards; write reports/shards.json."""
    from aiayn.config import load_params
    from aiayn.shard import build_shards

    build_shards(load_params(params).shard, clean, tokenizer, out, report)


if __name__ == "__main__":
    run(app)
