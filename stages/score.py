"""Stage ``score``: sacreBLEU, chrF and the paper's tokenized BLEU into reports/metrics.json,
and this run beside the paper's Tables 2 and 3 in reports/paper.md."""

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
    paper: Annotated[Path, typer.Option(help="report beside the paper")] = paths.PAPER_REPORT,
) -> None:
    """Score data/translations against the raw references; write the paper comparison."""
    from aiayn.config import load_params
    from aiayn.paper import render_run, run_result_from_files, write_text
    from aiayn.score import score_splits

    p = load_params(params)
    pairs = {
        "test": (paths.translation("test"), paths.raw_test(paths.TGT_LANG)),
        "dev": (paths.translation("dev"), paths.raw_dev(paths.TGT_LANG)),
    }
    score_splits(p.score, pairs, out)
    train_metrics = paths.TRAIN_METRICS
    if not train_metrics.exists() and paths.MODEL_JSON.exists():
        typer.echo(
            f"warning: {train_metrics} is missing (train ran without dvclive): {paper} leaves "
            "dev perplexity, tokens and FLOPs blank",
            err=True,
        )
        train_metrics = None
    run = run_result_from_files(
        "this run",
        paths.MODEL_JSON,
        train_metrics,
        out,
        label_smoothing=p.train.label_smoothing,
        source=p.data.source,
    )
    write_text(paper, render_run(run))


if __name__ == "__main__":
    run(app)
