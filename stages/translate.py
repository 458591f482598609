"""Stage ``translate``: beam-search decode the dev and test sources."""

from pathlib import Path
from typing import Annotated

import typer

from aiayn import paths
from aiayn.cli_util import new_app, run

app = new_app()


@app.command()
def main(
    params: Annotated[Path, typer.Option(help="params file")] = paths.PARAMS,
    model: Annotated[Path, typer.Option(help="averaged model folder")] = paths.MODEL,
    out: Annotated[Path, typer.Option(help="translations folder")] = paths.TRANSLATIONS,
) -> None:
    """Translate data/clean/{dev,test}.en into data/translations/{dev,test}.de."""
    from aiayn.config import load_params
    from aiayn.decode.translator import translate_splits

    sources = {split: paths.clean_split(split, paths.SRC_LANG) for split in ("dev", "test")}
    translate_splits(load_params(params).translate, model, sources, out)


if __name__ == "__main__":
    run(app)
