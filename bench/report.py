"""The benchmark report: figure checks, machine facts, ``bench.json`` and ``bench.md``.

``bench.json`` (format 1)::

    {"format": 1, "kind": "cpu" | "gpu", "mode": "tiny" | "quick" | "default" | "full",
     "command": str, "started": ISO time (UTC), "seconds": float,
     "machine": {"cpu_model", "cores", "cores_available", "ram_gb", "os", "python",
                 "versions": {package: version or None}, "torch_threads", "git_commit",
                 "git_dirty", "loadavg_start": [1, 5, 15 min], "loadavg_end": [...], ...},
     "benchmarks": {name: {"module", "seconds", "figures": int, "error": str or None,
                           "skipped": why (optional: not run here, e.g. bf16 on a T4)}},
     "figures": [{"bench": name, <the figure dict of bench/__init__.py>}, ...]}

``machine`` also says what the CPU can do, since every CPU figure depends on it:
``cpu_capability`` (the vector ISA torch's kernels use: ``AVX2``, ``AVX512``, ...),
``cpu_bf16`` (``{"isa": "AMX" | "AVX512-BF16" | None, "bf16_gflops", "fp32_gflops",
"fast"}``, :func:`aiayn.hardware.probe_cpu_bf16`) and ``cpu_isa_env`` (the variables that
narrow the ISA, e.g. ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`` to emulate an
AVX2-only CPU). Each figure may say the numeric ``precision`` it ran in (``fp32``,
``bf16``, ``fp16``; None where no floating-point maths is timed).

Every ratio is under a key containing ``ratio`` (``ratio``, with ``ratio_meaning`` saying
what it divides). Numbers are finite (``NaN`` is refused when writing), so the file is
strict JSON. Nothing here imports torch.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

FORMAT = 1
ROOT = Path(__file__).resolve().parent.parent
STAT_KEYS = ("median", "min", "max")
FIGURE_KEYS = ("name", "unit", "aiayn", "peer", "peer_name", "ratio", "ratio_meaning", "notes")
OPTIONAL_KEYS = ("precision",)  # absent: None
PRECISIONS = (None, "fp32", "bf16", "fp16")
PACKAGES = (
    "torch",
    "numpy",
    "tokenizers",
    "transformers",
    "subword-nmt",
    "sacremoses",
    "datasets",
    "sacrebleu",
)


class FigureError(ValueError):
    """A benchmark returned a figure that does not follow the schema."""


# ----------------------------------------------------------------------------- figures


def _number(x, where: str) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise FigureError(f"{where}: expected a number, got {type(x).__name__} {x!r}")
    x = float(x)
    if not math.isfinite(x):
        raise FigureError(f"{where}: not a finite number ({x})")
    return x


def _stats(s, where: str) -> dict:
    if not isinstance(s, dict) or set(s) != set(STAT_KEYS):
        got = sorted(s) if isinstance(s, dict) else type(s).__name__
        raise FigureError(f"{where}: expected a dict with keys median, min, max; got {got}")
    out = {k: _number(s[k], f"{where}.{k}") for k in STAT_KEYS}
    if not out["min"] <= out["median"] <= out["max"]:
        raise FigureError(f"{where}: min <= median <= max does not hold: {out}")
    return out


def check_figure(fig, where: str) -> dict:
    """A clean copy of one figure dict, or :class:`FigureError` naming ``where`` and the key.

    Checks: exactly the keys of the schema; ``aiayn`` (and ``peer`` when given) are
    median/min/max dicts of finite numbers with min <= median <= max; ``ratio`` is a finite
    number or None; a peer comes with its name; a ratio comes with its meaning; the optional
    ``precision`` is one of fp32/bf16/fp16 or None (the copy always has it).
    """
    if not isinstance(fig, dict):
        raise FigureError(f"{where}: a figure must be a dict, got {type(fig).__name__}")
    missing = [k for k in FIGURE_KEYS if k not in fig]
    extra = sorted(set(fig) - set(FIGURE_KEYS) - set(OPTIONAL_KEYS))
    if missing or extra:
        raise FigureError(f"{where}: missing keys {missing}, unknown keys {extra}")
    where = f"{where} ({fig['name']!r})"
    for key in ("name", "unit", "ratio_meaning", "notes"):
        if not isinstance(fig[key], str):
            raise FigureError(f"{where}.{key}: expected a string, got {fig[key]!r}")
    if not fig["name"]:
        raise FigureError(f"{where}.name: empty")
    out = {"precision": None, **fig}
    if out["precision"] not in PRECISIONS:
        raise FigureError(
            f"{where}.precision: expected one of {PRECISIONS}, got {fig['precision']!r}"
        )
    out["aiayn"] = _stats(fig["aiayn"], f"{where}.aiayn")
    if fig["peer"] is not None:
        out["peer"] = _stats(fig["peer"], f"{where}.peer")
        if not isinstance(fig["peer_name"], str) or not fig["peer_name"]:
            raise FigureError(f"{where}.peer_name: a peer measurement needs the peer's name")
    elif fig["peer_name"] is not None and not isinstance(fig["peer_name"], str):
        raise FigureError(f"{where}.peer_name: expected a string or None")
    if fig["ratio"] is not None:
        out["ratio"] = _number(fig["ratio"], f"{where}.ratio")
        if not fig["ratio_meaning"]:
            raise FigureError(f"{where}.ratio_meaning: a ratio needs its meaning")
    return out


# ----------------------------------------------------------------------------- machine


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gb() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        r = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=20, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip()


def loadavg() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def machine_info() -> dict:
    """Facts about this machine and checkout that a figure depends on (no torch import;
    the caller adds ``torch_threads`` and GPU facts once torch is loaded)."""
    commit = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    avail = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_available": avail,
        "ram_gb": _ram_gb(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {p: _version(p) for p in PACKAGES},
        "git_commit": commit,
        "git_dirty": None if dirty is None else bool(dirty),
        "loadavg_start": loadavg(),
    }


# ----------------------------------------------------------------------------- report


def now_utc() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


def build_report(
    *,
    kind: str,
    mode: str,
    command: str,
    machine: dict,
    benchmarks: dict,
    figures: list[dict],
    started: str,
    seconds: float,
) -> dict:
    """The ``bench.json`` dict (module doc); records the load average at the end."""
    return {
        "format": FORMAT,
        "kind": kind,
        "mode": mode,
        "command": command,
        "started": started,
        "seconds": round(seconds, 1),
        "machine": {**machine, "loadavg_end": loadavg()},
        "benchmarks": benchmarks,
        "figures": figures,
    }


def fmt(x: float | None) -> str:
    """A number for the table: 3 significant digits, thousands separated, no exponent
    below 1e9."""
    if x is None:
        return ""
    a = abs(x)
    if a == 0:
        return "0"
    if a >= 1e9 or a < 1e-4:
        return f"{x:.3g}"
    if a >= 100:
        return f"{x:,.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def _cell(s: dict | None) -> str:
    if s is None:
        return ""
    if fmt(s["min"]) == fmt(s["max"]):
        return fmt(s["median"])
    return f"{fmt(s['median'])} ({fmt(s['min'])}–{fmt(s['max'])})"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def machine_line(m: dict) -> str:
    """One paragraph describing the machine (for bench.md and the README)."""
    v = m.get("versions", {})
    pkgs = ", ".join(f"{k} {val}" for k, val in v.items() if val)
    cores = f"{m.get('cores')} CPU cores"
    if m.get("cores_available") not in (None, m.get("cores")):
        cores += f" ({m['cores_available']} available)"
    parts = [f"{m.get('cpu_model')}, {cores}, {m.get('ram_gb')} GiB RAM, {m.get('os')}"]
    if cpu := cpu_line(m):
        parts.append(cpu)
    if m.get("gpu"):
        g = m["gpu"]
        parts.append(
            f"GPU {g.get('name')} ({g.get('memory_gb')} GiB, compute capability "
            f"{g.get('capability')}, CUDA {g.get('cuda')})"
        )
    parts.append(f"python {m.get('python')}, {pkgs}")
    if m.get("torch_threads"):
        parts.append(f"torch threads {m['torch_threads']}")
    commit = (m.get("git_commit") or "unknown")[:10]
    parts.append(f"commit {commit}" + (" + uncommitted changes" if m.get("git_dirty") else ""))
    return "; ".join(parts) + "."


def cpu_info() -> dict:
    """What the CPU does with the maths (module doc: ``cpu_capability``, ``cpu_bf16``,
    ``cpu_isa_env``); imports torch and runs the bf16 probe (~0.3 s)."""
    import torch

    from aiayn.hardware import ISA_ENV, probe_cpu_bf16

    p = probe_cpu_bf16()
    return {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_bf16": {
            "isa": p.isa,
            "bf16_gflops": round(p.bf16_flops / 1e9, 2),
            "fp32_gflops": round(p.fp32_flops / 1e9, 2),
            "fast": p.fast,
        },
        "cpu_isa_env": {k: os.environ[k] for k in ISA_ENV if k in os.environ},
    }


def cpu_line(m: dict) -> str:
    """``CPU kernels AVX2 (ATEN_CPU_CAPABILITY=avx2), bf16 not native: bf16 matmul 1.8 vs
    fp32 140 GFLOP/s`` from :func:`cpu_info`'s keys ('' without them)."""
    if not m.get("cpu_capability"):
        return ""
    text = f"CPU kernels {m['cpu_capability']}"
    if env := m.get("cpu_isa_env"):
        text += " (" + " ".join(f"{k}={v}" for k, v in env.items()) + ")"
    if b := m.get("cpu_bf16"):
        kind = (
            f"bf16 native and fast ({b['isa']})"
            if b["fast"]
            else f"bf16 not fast despite {b['isa']}" if b["isa"] else "bf16 not native"
        )
        text += (
            f", {kind}: bf16 matmul {fmt(b['bf16_gflops'])} vs fp32 "
            f"{fmt(b['fp32_gflops'])} GFLOP/s"
        )
    return text


def load_line(m: dict) -> str:
    """The load average at start and end, and a warning when the machine was busy."""
    start, end = m.get("loadavg_start"), m.get("loadavg_end")
    if not start:
        return ""
    text = f"Load average (1/5/15 min) at start {'/'.join(fmt(x) for x in start)}"
    if end:
        text += f", at end {'/'.join(fmt(x) for x in end)}"
    cores = m.get("cores_available") or m.get("cores") or 1
    busy = max(start[0], (end or start)[0]) > 0.5 * cores
    return text + (
        f": other processes were using the {cores} cores, so the timings are noisy "
        "(ratios, measured alternately, suffer less)."
        if busy
        else "."
    )


def render_markdown(report: dict) -> str:
    """``bench.md``: header, one table row per figure, then each figure's peer, ratio
    meaning and notes, and any benchmark that failed."""
    m = report["machine"]
    lines = [
        f"# aiayn benchmarks ({report['kind']}, {report['mode']})",
        "",
        f"Taken {report['started']} in {report['seconds']:.0f} s with `{report['command']}` "
        f"on: {machine_line(m)}",
    ]
    if load := load_line(m):
        lines += ["", load]
    for r in report.get("merged", []):
        load = "/".join(fmt(x) for x in r.get("loadavg_start") or [])
        lines += [
            "",
            f"Updated {r['started']}: {', '.join(r['benchmarks'])} rerun ({r['mode']}, "
            f"{r['seconds']:.0f} s) with `{r['command']}`"
            + (f", load average at start {load}" if load else "")
            + "; those rows are from that run.",
        ]
    lines += [
        "",
        "| # | bench | figure | unit | precision | aiayn: median (min–max) "
        "| peer: median (min–max) | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, f in enumerate(report["figures"], 1):
        lines.append(
            f"| {i} | {f['bench']} | {_md(f['name'])} | {_md(f['unit'])} "
            f"| {f.get('precision') or ''} | {_cell(f['aiayn'])} "
            f"| {_cell(f['peer'])} | {fmt(f['ratio'])} |"
        )
    lines += ["", "Notes:", ""]
    for i, f in enumerate(report["figures"], 1):
        bits = []
        if f["peer_name"]:
            bits.append(f"peer: {f['peer_name']}")
        if f["ratio_meaning"]:
            bits.append(("ratio = " if f["ratio"] is not None else "") + f["ratio_meaning"])
        if f["notes"]:
            bits.append(f["notes"])
        lines.append(f"{i}. {_md('. '.join(bits))}")
    for title, key in (("Failed", "error"), ("Skipped", "skipped")):
        hit = {k: b[key] for k, b in report["benchmarks"].items() if b.get(key)}
        if hit:
            lines += ["", f"{title}:", ""]
            lines += [f"- {k}: {_md(why)}" for k, why in hit.items()]
    return "\n".join(lines) + "\n"


def load_report(path: Path) -> dict:
    """A ``bench.json`` to merge into (``python -m bench --merge``); a clear error if absent."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SystemExit(
            f"error: {path} does not exist: run the benchmarks without --merge"
        ) from None
    except ValueError as e:
        raise SystemExit(f"error: {path} is not valid JSON ({e}); run without --merge") from None


def merge_reports(old: dict, new: dict) -> dict:
    """``old`` with the benchmarks ``new`` ran replaced by ``new``'s (entries and figures;
    a replaced benchmark's figures take the place of its old ones), everything else kept.
    ``merged`` lists each merged run: benchmarks, command, start, seconds, load, commit."""
    ran = list(new["benchmarks"])
    figures, placed = [], set()
    for f in old["figures"]:
        if f["bench"] not in ran:
            figures.append(f)
        elif f["bench"] not in placed:
            placed.add(f["bench"])
            figures += [g for g in new["figures"] if g["bench"] == f["bench"]]
    figures += [g for g in new["figures"] if g["bench"] not in placed]
    m = new["machine"]
    record = {
        "benchmarks": ran,
        "mode": new["mode"],
        "command": new["command"],
        "started": new["started"],
        "seconds": new["seconds"],
        "loadavg_start": m.get("loadavg_start"),
        "loadavg_end": m.get("loadavg_end"),
        "git_commit": m.get("git_commit"),
    }
    return {
        **old,
        "benchmarks": {**old["benchmarks"], **new["benchmarks"]},
        "figures": figures,
        "merged": [*old.get("merged", []), record],
    }


def write_report(report: dict, json_path: Path, md_path: Path | None = None) -> str:
    """Write ``bench.json`` (strict JSON) and ``bench.md`` atomically; return the markdown."""
    from aiayn.fsio import atomic_file

    text = json.dumps(report, indent=2, allow_nan=False) + "\n"
    md = render_markdown(report)
    with atomic_file(json_path) as f:
        f.write(text)
    if md_path is not None:
        with atomic_file(md_path) as f:
            f.write(md)
    return md


def run_alone(run, doc: str, argv: list[str] | None = None) -> None:
    """``python -m bench.<module> [--quick|--tiny]``: print ``run``'s figures as JSON
    (``run(quick, tiny=...)`` of a benchmark module; ``doc`` its docstring)."""
    import argparse

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes")
    ap.add_argument("--tiny", action="store_true", help="smallest sizes (the unit test)")
    args = ap.parse_args(argv)
    print(json.dumps(run(args.quick, tiny=args.tiny), indent=2))
