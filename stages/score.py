"""Stage ``score``: sacreBLEU, chrF and the paper's tokenized BLEU into reports/metrics.json."""

from pathlib import Path
from typing import Annotated

import typer

from aiayn import paths
from aiayn.cli_util import new_app, run

app = new_app()


@app.command()
def main(
    params: Annotated[Path, typer.Option(help="params file")] = paths.PARAMS,
    out: Annotated[Path, typer.Option(help="metrics file")] = paths.METRICS,
) -> None:
    """Score data/translations against the raw references."""
    from aiayn.config import load_params
    from aiayn.score import score_splits

    pairs = {
        "test": (paths.translation("test"), paths.raw_test(paths.TGT_LANG)),
        "dev": (paths.translation("dev"), paths.raw_dev(paths.TGT_LANG)),
    }
    score_splits(load_params(params).score, pairs, out)


if __name__ == "__main__":
    run(app)
