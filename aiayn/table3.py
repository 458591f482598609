"""``aiayn table3``: the paper's Table 3 (rows A-E) as a grid of DVC experiments, and the
table of their results beside the paper's.

``aiayn table3 queue`` queues one ``dvc exp run --queue`` per row, named
``<prefix>-<row>`` (``t3-A1`` ... ``t3-E``, and ``t3-base``), each on top of the current
``params.yaml`` (plus any ``-S key=value`` given to the command) with only that row's
settings changed, as in the paper. ``--relative`` scales each row's sizes to the base
(``value x base / paper base``) for a base that is not the paper's 512-wide model;
``--demo-scale`` is a small base for a CPU (:data:`DEMO_SCALE`) with ``--relative``.
``--run`` then runs the queue (``dvc exp run --run-all``). ``aiayn table3 report`` reads
``dvc exp show --json`` and writes the table (``reports/table3.md``).

Every row's parameters are validated before anything is queued.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from aiayn.cli_util import new_app
from aiayn.errors import AiaynError, ConfigError

app = new_app(
    help="The paper's Table 3 (rows A-E) as DVC experiments, and their table beside the "
    "paper's.",
    no_args_is_help=True,
)

DEFAULT_PREFIX = "t3"
DEFAULT_REPORT = Path("reports/table3.md")

# The grid's base at demo scale, on top of the demo params.yaml (with --relative): the
# paper's base shape (h = 8, d_ff = 4 d_model, P_drop = eps_ls = 0.1) at an eighth of its
# width and half its depth, so that every row scales to whole numbers (h 1..32, d_k down
# to 2, N 1, 2 and 4), trained for 300 steps of 1024 tokens, one thread per experiment;
# single models as in the paper's Table 3 (no checkpoint averaging); a 300-line dev set
# and a 100-line test set, since decoding is a large part of a short run. The 19
# experiments took 25 minutes with --jobs 2 on two busy CPU cores (README, Table 3).
DEMO_SCALE: dict[str, Any] = {
    "data.demo.dev_pairs": 300,
    "data.demo.test_pairs": 100,
    "model.encoder_layers": 3,
    "model.decoder_layers": 3,
    "model.d_model": 64,
    "model.d_ff": 256,
    "model.n_heads": 8,
    "model.d_k": 0,
    "model.d_v": 0,
    "model.dropout": 0.1,
    "model.positional": "sinusoidal",
    "train.label_smoothing": 0.1,
    "train.precision": "fp32",
    "train.threads": 1,
    "train.max_steps": 300,
    "train.tokens_per_step": 1024,
    "train.max_tokens": 1024,
    "train.warmup_steps": 100,
    "train.lr_scale": 0.5,
    "train.save_every": 100,
    "train.eval_every": 0,
    "average.last": 1,
}


# ----------------------------------------------------------------------------- settings


def parse_set(items: list[str], params: dict) -> dict[str, Any]:
    """``["key=value", ...]`` (``-S``) -> ``{key: value}``; values read as YAML scalars;
    every key must be a leaf of ``params``."""
    import yaml

    out = {}
    for item in items:
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ConfigError(f"-S {item!r}: expected key=value, e.g. -S train.max_steps=200")
        node: Any = params
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"-S {item}: {key} is not a key of params.yaml")
            node = node[part]
        if isinstance(node, dict):
            raise ConfigError(f"-S {item}: {key} is a section; set one of its keys")
        try:
            out[key] = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"-S {item}: {text!r} is not a value") from None
    return out


def applied(params: dict, changes: dict[str, Any]) -> dict:
    """A deep copy of ``params`` with dotted-key ``changes`` set."""
    import copy

    out = copy.deepcopy(params)
    for key, value in changes.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node[part]
        node[leaf] = value
    return out


def set_arg(key: str, value: Any) -> str:
    """``key=value`` for ``dvc exp run -S`` (YAML-style booleans)."""
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"{key}={value}"


def plan(
    params: dict,
    base_changes: dict[str, Any],
    rows: list[str],
    relative: bool,
    prefix: str,
) -> list[tuple[str, dict[str, Any]]]:
    """(experiment name, ``-S`` settings) for the base and each chosen row, every one
    validated as a complete params file first (a ConfigError names the row)."""
    from aiayn.config import params_from_dict
    from aiayn.paper import scaled_change, select_rows, settings, terms_of

    base = params_from_dict(applied(params, base_changes), "params.yaml with the -S settings")
    terms = terms_of(base.model, base.train.label_smoothing)
    runs = [(f"{prefix}-base", dict(base_changes))]
    for row in select_rows(rows):
        change = scaled_change(row, terms) if relative else row.change
        changes = {**base_changes, **settings(change)}
        try:
            params_from_dict(applied(params, changes), f"params.yaml with row {row.id}")
        except ConfigError as e:
            raise ConfigError(f"{e} (row {row.id}: {row.describe()})") from None
        runs.append((f"{prefix}-{row.id}", changes))
    return runs


# ----------------------------------------------------------------------------- dvc


def dvc(args: list[str], *, capture: bool = True) -> subprocess.CompletedProcess:
    """Run ``dvc args`` in the working folder; an AiaynError with dvc's message on failure."""
    try:
        p = subprocess.run(
            ["dvc", *args], capture_output=capture, text=True, check=False, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:
        raise AiaynError("dvc is not installed here (pip install -e . installs it)") from None
    if p.returncode != 0:
        lines = ((p.stderr or "") + (p.stdout or "")).strip().splitlines()
        first = next(
            (line for line in lines if line.startswith("ERROR")), lines[-1] if lines else ""
        )
        raise AiaynError(f"`dvc {shlex.join(args)}` failed ({p.returncode}): {first.strip()}")
    return p


def existing_names(prefix: str) -> set[str]:
    """Names of this baseline's experiments and queued runs that start with ``prefix-``."""
    names = set(dvc(["exp", "list", "--name-only"]).stdout.split())
    for line in dvc(["queue", "status"]).stdout.splitlines()[1:]:
        names |= set(line.split()[1:2])
    return {n for n in names if n.startswith(prefix + "-")}


# ----------------------------------------------------------------------------- commands


@app.command("queue")
def queue_command(
    rows: Annotated[
        list[str] | None,
        typer.Argument(help="rows (A1 ... E) or groups (A ... E); default all of A-E"),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("-S", "--set", help="params key=value for every experiment (the grid's base)"),
    ] = None,
    relative: Annotated[
        bool,
        typer.Option(help="scale each row's sizes to the base: value x base / paper base"),
    ] = False,
    demo_scale: Annotated[
        bool,
        typer.Option(help="the grid at demo scale on a CPU: the DEMO_SCALE base, --relative"),
    ] = False,
    prefix: Annotated[str, typer.Option(help="experiment names: <prefix>-<row>")] = (
        DEFAULT_PREFIX
    ),
    run: Annotated[bool, typer.Option(help="then run the queue: dvc exp run --run-all")] = False,
    jobs: Annotated[int, typer.Option("-j", "--jobs", min=1, help="parallel runs (--run)")] = 1,
    dry_run: Annotated[bool, typer.Option(help="print the dvc commands, queue nothing")] = False,
    params_file: Annotated[Path, typer.Option("--params", help="the base params")] = Path(
        "params.yaml"
    ),
) -> None:
    """Queue Table 3's rows (and the base) as DVC experiments on top of params.yaml."""
    import yaml

    from aiayn.config import load_params

    load_params(params_file)  # the base file itself is valid
    params = yaml.safe_load(params_file.read_text(encoding="utf-8"))
    base_changes = {**(DEMO_SCALE if demo_scale else {}), **parse_set(set_ or [], params)}
    runs = plan(params, base_changes, rows or [], relative or demo_scale, prefix)
    commands = [
        [
            "exp",
            "run",
            "--queue",
            "-n",
            name,
            *[a for k, v in s.items() for a in ("-S", set_arg(k, v))],
        ]
        for name, s in runs
    ]
    for args in commands:
        print("dvc " + shlex.join(args), flush=True)
    if dry_run:
        return
    taken = existing_names(prefix)
    clash = sorted(taken & {name for name, _ in runs})
    if clash:
        raise AiaynError(
            f"experiment {clash[0]} exists already ({len(clash)} of these names do): remove "
            f"them (dvc exp remove {' '.join(clash)}; queued ones: dvc queue remove) or "
            "choose another --prefix"
        )
    for args in commands:
        dvc(args)
    print(f"queued {len(commands)} experiments ({prefix}-base and {len(commands) - 1} rows)")
    if run:
        dvc(["exp", "run", "--run-all", "--jobs", str(jobs)], capture=False)
        print(f"done; the table: aiayn table3 report --prefix {prefix}")
    else:
        print(f"run them with: dvc exp run --run-all; then: aiayn table3 report --prefix {prefix}")


@app.command("report")
def report_command(
    prefix: Annotated[str, typer.Option(help="experiment names: <prefix>-<row>")] = (
        DEFAULT_PREFIX
    ),
    exp_show: Annotated[
        Path | None,
        typer.Option(help="read this saved `dvc exp show --json` output instead of running it"),
    ] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Markdown file to write")] = (
        DEFAULT_REPORT
    ),
) -> None:
    """Write Table 3 (and Table 2 for the base) of the experiments beside the paper's."""
    import json

    from aiayn.paper import render_grid, run_results_from_exp_show, write_text

    if exp_show is not None:
        try:
            text = exp_show.read_text(encoding="utf-8")
        except OSError as e:
            raise AiaynError(f"{exp_show}: cannot read: {e.strerror}") from None
        source = str(exp_show)
    else:
        text = dvc(["exp", "show", "--json"]).stdout
        source = "dvc exp show --json"
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as e:
        raise AiaynError(f"{source}: not JSON ({e.msg}, line {e.lineno})") from None
    results = run_results_from_exp_show(rows, prefix)
    if not results:
        raise AiaynError(
            f"no experiments named {prefix}-<row> in {source}: queue and run them with "
            f"`aiayn table3 queue --run`, or pass the --prefix they were queued with"
        )
    write_text(output, render_grid(results, prefix, source))
    print(f"wrote {output}: {len(results)} of 19 rows (base and A-E) have results", file=sys.stderr)
