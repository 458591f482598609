"""Stage ``clean``: normalise, filter and deduplicate the training pairs; report what went."""

from pathlib import Path
from typing import Annotated

import typer

from aiayn import paths
from aiayn.cli_util import new_app, run

app = new_app()


@app.command()
def main(
    params: Annotated[Path, typer.Option(help="params file")] = paths.PARAMS,
    raw: Annotated[Path, typer.Option(help="raw data folder")] = paths.RAW,
    out: Annotated[Path, typer.Option(help="clean data folder")] = paths.CLEAN,
    report_json: Annotated[
        Path, typer.Option(help="per-corpus, per-filter counts (DVC metrics)")
    ] = paths.DATA_REPORT_JSON,
    report_md: Annotated[Path, typer.Option(help="the same as a table")] = paths.DATA_REPORT_MD,
) -> None:
    """Clean data/raw into data/clean; write reports/data.{json,md}."""
    from aiayn.config import load_params
    from aiayn.data.clean import clean

    report = clean(load_params(params).clean, raw, out, report_json, report_md)
    t = report["total"]
    print(f"clean: kept {t['kept']:,} of {t['input']:,} training pairs; see {report_md}")


if __name__ == "__main__":
    run(app)
