"""The ``aiayn`` command (also ``python -m aiayn``): tools for people, next to the pipeline.

Subcommands live in the modules that implement them and are registered here by name, so
this file stays small and ``aiayn --help`` imports no torch.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated

import typer

from aiayn.cli_util import new_app, run

app = new_app(
    help="aiayn: Attention Is All You Need, reproduced. "
    "Run the pipeline with `dvc repro`; these commands inspect and use its results.",
    no_args_is_help=True,
)

# (command name, "module:function"). Each function is a Typer command whose heavy imports
# (torch, tokenizers, sacrebleu) happen inside its body.
COMMANDS: list[tuple[str, str]] = [
    ("translate", "aiayn.decode.cli:translate"),
    ("score", "aiayn.score:score_command"),
    ("model-info", "aiayn.model_info:model_info"),
    ("preset", "aiayn.presets:preset_command"),
    ("attention", "aiayn.attention_plot:attention_command"),
    ("export", "aiayn.export:export_command"),
]


@app.callback()
def _root() -> None:
    """aiayn: Attention Is All You Need, reproduced as a DVC pipeline."""


for _name, _target in COMMANDS:
    _module, _func = _target.split(":")
    app.command(_name)(getattr(importlib.import_module(_module), _func))

# Command groups: (name, "module:typer app").
GROUPS: list[tuple[str, str]] = [("table3", "aiayn.table3:app")]
for _name, _target in GROUPS:
    _module, _app = _target.split(":")
    app.add_typer(getattr(importlib.import_module(_module), _app), name=_name)


@app.command("params")
def show_params(
    path: Annotated[Path, typer.Argument(help="params file to check")] = Path("params.yaml"),
) -> None:
    """Validate a params file and print every parameter with its value."""
    from aiayn.config import dump_params, load_params

    print(dump_params(load_params(path)), end="")


def main() -> None:
    run(app)


if __name__ == "__main__":
    main()
