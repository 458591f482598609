"""Stage ``tokenize``: learn one BPE model shared by English and German.

This file's name is also the name of a standard-library module. ``python stages/<any>.py``
puts ``stages/`` first on ``sys.path``, so the ``import tokenize`` done by ``inspect`` (and
so by typer and torch) in *every* stage finds this file. When imported under that name it
loads the real standard-library module and puts it in its own place (``import`` returns
what ``sys.modules`` holds once the module has run) and imports nothing that needs
``inspect``.
"""

from __future__ import annotations

import os
import sys


def _stdlib_tokenize_in_place_of_this_file() -> None:
    import importlib.machinery
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("tokenize", path)
    real = importlib.util.module_from_spec(spec)
    sys.modules["tokenize"] = real
    spec.loader.exec_module(real)


if __name__ == "tokenize":
    _stdlib_tokenize_in_place_of_this_file()
else:
    import typer

    from aiayn.cli_util import new_app, run

from pathlib import Path  # noqa: E402
from typing import Annotated  # noqa: E402

from aiayn import paths  # noqa: E402


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
    app = new_app()
    app.command()(main)
    run(app)
