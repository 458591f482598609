"""Stage ``download``: the raw parallel corpora, dev and test sets, in one layout.

``data.source: demo`` generates the seeded synthetic corpus offline; ``wmt14`` downloads the
official archives; ``hf`` reads WMT14 through Hugging Face ``datasets``. All write
``data/raw/`` identically (see aiayn/paths.py), then keep a seeded sample of
``data.max_train_pairs`` training pairs when that is set.
"""

from pathlib import Path
from typing import Annotated

import typer

from aiayn import paths
from aiayn.cli_util import new_app, run

app = new_app()


@app.command()
def main(
    params: Annotated[Path, typer.Option(help="params file")] = paths.PARAMS,
    out: Annotated[Path, typer.Option(help="raw data folder")] = paths.RAW,
) -> None:
    """Download (or generate) the raw corpora into data/raw."""
    from aiayn.config import load_params
    from aiayn.data.download import download

    download(load_params(params).data, out)


if __name__ == "__main__":
    run(app)
