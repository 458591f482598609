"""``python -m bench``: run the benchmarks, write ``reports/bench.{json,md}``, print the table.

Modes (how big the workloads are):

- ``--quick``: small sizes, a few minutes in all; use it after any change;
- default: the sizes of the issues' figures, except the two WMT14-scale runs (clean, and
  tokenize + shard, on a generated 4.5M-pair corpus), which use a tenth of that;
- ``--full``: the default plus the WMT14-scale runs (tens of minutes, several GB of disk in
  ``.cache/bench``);
- ``--tiny``: smaller than quick, for the unit test (proves wiring, not speed).

``--only train decode ...`` runs some of them (names: see :data:`bench.BENCHMARKS`);
``--threads N`` sets torch's thread count (on a machine busy with other work, 1 gives
steadier figures).
Each benchmark runs in this process, one after another; one that fails is reported in the
JSON and the markdown and the others still run (exit status 1). Figures are checked
against the schema (:func:`bench.report.check_figure`).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import shlex
import sys
import time
import traceback
from pathlib import Path

from bench import BENCHMARKS
from bench.report import (
    ROOT,
    build_report,
    check_figure,
    cpu_info,
    load_report,
    machine_info,
    merge_reports,
    now_utc,
    write_report,
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m bench", description="aiayn side-by-side benchmarks (make bench)"
    )
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    size.add_argument("--tiny", action="store_true", help="smallest sizes (the unit test)")
    size.add_argument(
        "--full", action="store_true", help="add the WMT14-scale clean and tokenize+shard runs"
    )
    ap.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        choices=list(BENCHMARKS),
        help=f"run only these ({', '.join(BENCHMARKS)})",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads (0: torch's default). On a busy machine 1 gives steadier figures: "
        "with every core taken, multi-threaded small operations wait on each other",
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=ROOT / "reports",
        help="folder for bench.json and bench.md (default: reports/)",
    )
    ap.add_argument(
        "--merge",
        action="store_true",
        help="update the benchmarks run (with --only) in the existing bench.json/md, keeping "
        "the others' figures; the report lists each merged run with its date and load",
    )
    return ap.parse_args(argv)


def mode_of(args: argparse.Namespace) -> str:
    return "tiny" if args.tiny else "quick" if args.quick else "full" if args.full else "default"


def call_run(module, mode: str) -> list:
    """``module.run`` for ``mode``: ``quick`` is True for tiny and quick; ``tiny`` and
    ``full`` are passed to modules whose ``run`` takes them."""
    params = inspect.signature(module.run).parameters
    kwargs = {}
    if "tiny" in params:
        kwargs["tiny"] = mode == "tiny"
    if "full" in params:
        kwargs["full"] = mode == "full"
    return module.run(mode in ("tiny", "quick"), **kwargs)


def run_one(name: str, module_name: str, mode: str) -> tuple[dict, list[dict]]:
    """Run one benchmark; (its entry for ``benchmarks``, its checked figures)."""
    t0 = time.perf_counter()
    entry: dict = {"module": module_name, "seconds": None, "figures": 0, "error": None}
    figures: list[dict] = []
    try:
        module = importlib.import_module(module_name)
        raw = call_run(module, mode)
        if not isinstance(raw, list) or not raw:
            raise TypeError(f"{module_name}.run returned {type(raw).__name__}, not a list")
        figures = [{"bench": name, **check_figure(f, f"{name}[{i}]")} for i, f in enumerate(raw)]
    except KeyboardInterrupt:
        raise
    except Exception as e:  # reported, and the other benchmarks still run
        traceback.print_exc()
        entry["error"] = f"{type(e).__name__}: {e}".strip().splitlines()[0][:500]
        figures = []
    entry["seconds"] = round(time.perf_counter() - t0, 1)
    entry["figures"] = len(figures)
    return entry, figures


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    mode = mode_of(args)
    names = args.only or list(BENCHMARKS)
    started, t0 = now_utc(), time.perf_counter()
    machine = machine_info()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # for the benchmarks' children
    machine["torch_threads"] = torch.get_num_threads()
    machine.update(cpu_info())
    benchmarks, figures = {}, []
    for name in names:
        print(f"== bench {name} ({mode})", file=sys.stderr, flush=True)
        entry, figs = run_one(name, BENCHMARKS[name], mode)
        benchmarks[name] = entry
        figures += figs
        status = entry["error"] or f"{entry['figures']} figures"
        print(f"== bench {name}: {status} in {entry['seconds']:.0f} s", file=sys.stderr)
    report = build_report(
        kind="cpu",
        mode=mode,
        command=shlex.join(["python", "-m", "bench", *argv]),
        machine=machine,
        benchmarks=benchmarks,
        figures=figures,
        started=started,
        seconds=time.perf_counter() - t0,
    )
    if args.merge:
        report = merge_reports(load_report(args.out / "bench.json"), report)
    md = write_report(report, args.out / "bench.json", args.out / "bench.md")
    print(md)
    print(f"wrote {args.out / 'bench.json'} and {args.out / 'bench.md'}", file=sys.stderr)
    return 1 if any(b["error"] for b in benchmarks.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
