"""The benchmark runner (``python -m bench``), its report, and the GPU script.

No speed is asserted here (figures live in bench/, not in tests): these check that every
benchmark runs end to end at tiny sizes and writes the documented JSON and table, that a
failing benchmark is reported without losing the others, that the GPU script's batch-size
search and whole run work without dvc, dvclive, sacremoses or datasets, and the memory
measurement the WMT-scale figures rely on.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from bench import BENCHMARKS
from bench.report import (
    FIGURE_KEYS,
    OPTIONAL_KEYS,
    FigureError,
    check_figure,
    render_markdown,
)

ROOT = Path(__file__).resolve().parent.parent
MACHINE_KEYS = (
    "cpu_model",
    "cores",
    "ram_gb",
    "os",
    "python",
    "versions",
    "git_commit",
    "cpu_capability",
    "cpu_bf16",
)


def _figure(**over) -> dict:
    fig = {
        "name": "x per s",
        "unit": "x/s",
        "aiayn": {"median": 2.0, "min": 1.0, "max": 3.0},
        "peer": {"median": 1.0, "min": 1.0, "max": 1.0},
        "peer_name": "peer",
        "ratio": 2.0,
        "ratio_meaning": "aiayn / peer",
        "notes": "",
    }
    fig.update(over)
    return fig


def _strict_json(path: Path) -> dict:
    def refuse(name):
        raise ValueError(f"{path}: non-standard JSON constant {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


def _env(tmp_path: Path, **extra) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", AIAYN_BENCH_CACHE=str(tmp_path / "cache"))
    env.update(extra)
    return env


def _check_report(report: dict, names: list[str]) -> None:
    """The bench.json contract shared by the CPU runner and the GPU script."""
    assert report["format"] == 1
    m = report["machine"]
    for key in MACHINE_KEYS:
        assert m[key] is not None, key
    assert m["versions"]["torch"] and m["versions"]["transformers"]
    for key in ("loadavg_start", "loadavg_end"):
        assert len(m[key]) == 3 and all(x >= 0 for x in m[key])
    assert list(report["benchmarks"]) == names
    assert len({f["name"] for f in report["figures"]}) == len(report["figures"])  # unique
    for name, entry in report["benchmarks"].items():
        assert entry["error"] is None, (name, entry["error"])
        if entry.get("skipped"):
            assert entry["figures"] == 0
            continue
        assert entry["figures"] > 0
        assert entry["figures"] == sum(f["bench"] == name for f in report["figures"])
    for f in report["figures"]:
        assert set(f) == {"bench", *FIGURE_KEYS, *OPTIONAL_KEYS}  # nothing outside the schema
        check_figure({k: f[k] for k in FIGURE_KEYS}, f["bench"])
        if f["peer"] is not None:  # a peer always comes with its ratio, under "ratio"
            assert math.isfinite(f["ratio"]) and f["ratio"] > 0, f["name"]


# ----------------------------------------------------------------------------- schema


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"ratio": float("nan")}, "ratio: not a finite number"),
        ({"aiayn": {"median": 5.0, "min": 1.0, "max": 3.0}}, "min <= median <= max"),
        ({"aiayn": {"median": 1.0, "min": 1.0}}, "keys median, min, max"),
        ({"peer_name": None}, "peer_name: a peer measurement needs the peer's name"),
        ({"ratio_meaning": ""}, "ratio_meaning: a ratio needs its meaning"),
        ({"speedup": 2.0}, "unknown keys ['speedup']"),
        ({"unit": None}, "unit: expected a string"),
        ({"ratio": True}, "ratio: expected a number"),
        ({"precision": "int8"}, "precision: expected one of"),
    ],
)
def test_check_figure_refuses_what_breaks_the_schema(over, message):
    assert check_figure(_figure(), "t[0]")["ratio"] == 2.0
    with pytest.raises(FigureError, match="t\\[0\\]") as e:
        check_figure(_figure(**over), "t[0]")
    assert message in str(e.value)


def test_markdown_has_one_row_per_figure_and_names_failures():
    report = {
        "kind": "cpu",
        "mode": "quick",
        "command": "python -m bench --quick",
        "started": "2025-01-01T00:00:00+00:00",
        "seconds": 12.0,
        "machine": {"cores": 2, "loadavg_start": [3.5, 3.0, 2.0], "loadavg_end": [4.0, 3, 2]},
        "benchmarks": {"a": {"error": None}, "b": {"error": "ValueError: boom"}},
        "figures": [
            {"bench": "a", **_figure(ratio=1.2345)},
            {"bench": "a", **_figure(name="mem", peer=None, peer_name=None, ratio=None)},
        ],
    }
    md = render_markdown(report)
    rows = [line for line in md.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 2  # header + figures
    assert rows[1].endswith("| x/s |  | 2.00 (1.00–3.00) | 1.00 | 1.23 |")
    assert "- b: ValueError: boom" in md
    assert "timings are noisy" in md  # load 4 on 2 cores


# ----------------------------------------------------------------------------- runner


def test_bench_tiny_runs_every_benchmark_and_writes_the_report(tmp_path):
    """``python -m bench --tiny`` (quick mode at tiny sizes): all benchmarks, valid JSON."""
    out = tmp_path / "reports"
    r = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--out", str(out)],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    report = _strict_json(out / "bench.json")
    assert report["mode"] == "tiny" and report["kind"] == "cpu"
    _check_report(report, list(BENCHMARKS))
    figs = {f["name"]: f for f in report["figures"]}
    # Length-sorted token batches waste less padding than random ones: on both corpora.
    for name in ("padding waste, demo", "padding waste, WMT-like lengths"):
        assert figs[name]["aiayn"]["median"] < figs[name]["peer"]["min"]
    md = (out / "bench.md").read_text()
    assert md in r.stdout  # the table is printed
    # what the CPU does with bf16, as precision selection sees it, is in the report
    from aiayn.hardware import probe_cpu_bf16

    m = report["machine"]
    assert m["cpu_bf16"]["isa"] == probe_cpu_bf16().isa
    assert m["cpu_bf16"]["fast"] == probe_cpu_bf16().fast
    assert f"CPU kernels {m['cpu_capability']}" in md
    for f in report["figures"]:  # every timed floating-point figure says its precision
        assert (f["precision"] == "fp32") == (f["bench"] in ("train", "decode")), f["name"]
    assert sum(line.startswith("| ") for line in md.splitlines()) == 1 + len(report["figures"])


def _fake_modules(monkeypatch, calls: list) -> None:
    def ok_run(quick, full=False):
        calls.append(("ok", quick, full))
        return [_figure()]

    def bad_run(quick):
        calls.append(("bad", quick))
        raise ValueError("boom")

    def schema_run(quick, tiny=False):
        calls.append(("schema", quick, tiny))
        return [_figure(ratio=float("inf"))]

    for name, fn in (("ok", ok_run), ("bad", bad_run), ("schema", schema_run)):
        mod = types.ModuleType(f"fake_bench_{name}")
        mod.run = fn
        monkeypatch.setitem(sys.modules, mod.__name__, mod)
    import bench.__main__ as runner

    fakes = {n: f"fake_bench_{n}" for n in ("ok", "bad", "schema")}
    monkeypatch.setattr(runner, "BENCHMARKS", fakes)


def test_a_failing_benchmark_is_reported_and_the_others_still_run(tmp_path, monkeypatch, capsys):
    import bench.__main__ as runner

    calls: list = []
    _fake_modules(monkeypatch, calls)
    rc = runner.main(["--full", "--only", "bad", "schema", "ok", "--out", str(tmp_path)])
    assert rc == 1
    # tiny/full reach only the modules whose run() takes them; quick is False in full mode
    assert calls == [("bad", False), ("schema", False, False), ("ok", False, True)]
    report = _strict_json(tmp_path / "bench.json")
    assert report["mode"] == "full"
    b = report["benchmarks"]
    assert b["bad"]["error"] == "ValueError: boom" and b["bad"]["figures"] == 0
    assert b["schema"]["error"].startswith("FigureError: schema[0]")
    assert b["ok"]["error"] is None and b["ok"]["figures"] == 1
    assert [f["bench"] for f in report["figures"]] == ["ok"]
    assert "- bad: ValueError: boom" in (tmp_path / "bench.md").read_text()
    assert "x per s" in capsys.readouterr().out


def test_unknown_benchmark_name_is_a_usage_error(capsys):
    import bench.__main__ as runner

    with pytest.raises(SystemExit) as e:
        runner.parse_args(["--only", "trian"])
    assert e.value.code == 2
    assert "invalid choice: 'trian'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- memory


def test_peak_rss_of_a_child_does_not_include_its_large_parent(tmp_path):
    """ru_maxrss of a subprocess child reports the parent's size (vfork + exec); the
    benchmarks' peak memory figures read the child's own VmHWM instead."""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc")
    code = (
        "import subprocess, sys\n"
        "x = bytearray(400 * 2**20)\n"
        "for i in range(0, len(x), 4096): x[i] = 1\n"
        "child = 'from bench import peak_rss_bytes; print(peak_rss_bytes())'\n"
        "r = subprocess.run([sys.executable, '-c', child], capture_output=True, text=True)\n"
        "import resource\n"
        "print(r.stdout.strip(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    child, rusage_children = map(int, r.stdout.split())
    assert rusage_children > 400 * 2**20  # the trap
    assert 1 * 2**20 < child < 200 * 2**20  # a bare python


# ----------------------------------------------------------------------------- GPU script


def test_gpu_batch_size_search_takes_the_largest_that_fits():
    import torch

    from bench.gpu import is_oom, largest_fitting

    tried, freed = [], []

    def try_size(n):
        tried.append(n)
        if n > 1500:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")

    size, failed = largest_fitting([512, 4096, 1024, 2048], try_size, lambda: freed.append(1))
    assert (size, failed, tried, len(freed)) == (1024, [4096, 2048], [4096, 2048, 1024], 2)
    assert largest_fitting([8, 4], try_size, lambda: None, simulate_oom_above=2) == (None, [8, 4])
    assert is_oom(RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling ..."))

    def broken(n):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="shapes"):
        largest_fitting([4], broken, lambda: None)


@pytest.mark.parametrize(
    ("name", "precision", "tflops"),
    [
        ("NVIDIA H200", "bf16", 989),
        ("NVIDIA H100 PCIe", "bf16", 756),
        ("NVIDIA H100 80GB HBM3", "fp16", 989),
        ("NVIDIA A100-SXM4-80GB", "bf16", 312),
        ("NVIDIA L4", "bf16", 121),
        ("NVIDIA L40S", "bf16", 362),
        ("Tesla T4", "fp16", 65),
        ("Tesla V100-SXM2-16GB", "fp16", 125),
        ("Tesla P100-PCIE-16GB", "fp16", 18.7),
    ],
)
def test_gpu_peak_table_dense_half_precision(name, precision, tflops):
    from aiayn.train.flops import gpu_peak_flops

    assert gpu_peak_flops(name, precision) == pytest.approx(tflops * 1e12)


BLOCKED = ("dvc", "dvclive", "sacremoses", "datasets", "subword_nmt", "psutil")


def test_gpu_script_runs_without_dvc_dvclive_sacremoses(tmp_path):
    """bench/gpu.sh --tiny (the GPU script's code on the CPU) in a python where dvc,
    dvclive, sacremoses, datasets, subword-nmt and psutil cannot be imported: the model,
    trainer step and decoder it uses import and run; the batch-size search picks the
    largest size under a simulated memory limit; the JSON has the report's format."""
    block = tmp_path / "block"
    block.mkdir()
    (block / "sitecustomize.py").write_text(
        "import os, sys\n"
        f"for name in {BLOCKED!r}:\n"
        "    sys.modules[name] = None  # import raises ImportError; find_spec gives None\n"
        "open(os.environ['BLOCK_MARKER'], 'a').write('active\\n')\n"
    )
    out = tmp_path / "out"
    env = _env(
        tmp_path,
        PYTHON=sys.executable,
        OUT=str(out),
        PYTHONPATH=str(block),
        BLOCK_MARKER=str(tmp_path / "marker"),
    )
    r = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu.sh"), "--tiny", "--simulate-oom-above", "300"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "marker").read_text().count("active") >= 2  # preflight + benchmark
    report = _strict_json(out / "bench_gpu.json")
    assert report["mode"] == "tiny"
    _check_report(report, ["matmul", "train demo fp32", "train demo bf16", "decode"])
    figs = {f["name"]: f for f in report["figures"]}
    assert all(f["precision"] in ("fp32", "bf16") for f in figs.values())
    from aiayn.hardware import probe_cpu_bf16

    precs = ["fp32"]
    if probe_cpu_bf16().slow:  # bf16 on a CPU without native bf16 is refused, so skipped
        assert "bf16 runs" in report["benchmarks"]["train demo bf16"]["skipped"]
    else:
        precs.append("bf16")
    for prec in precs:
        note = figs[f"train tokens/s demo {prec}"]["notes"]
        assert "max_tokens 256 " in note and "(512 did not)" in note
        assert figs[f"MFU demo {prec} (measured matmul)"]["aiayn"]["median"] > 0
    decode = figs["beam-4 decoding sentences/s demo fp32: aiayn vs Marian"]
    assert decode["unit"] == "sentences/s" and "6 of 6" in decode["notes"]
    assert (out / "bench_gpu.md").read_text().startswith("# aiayn benchmarks (cpu, tiny)")


def test_merge_replaces_only_the_benchmarks_rerun():
    """``python -m bench --only decode --merge``: decode's rows are the new run's, in
    decode's place; the other rows and the report's header stay, and the merge is listed."""
    from bench.report import merge_reports, render_markdown

    def fig(bench: str, name: str, value: float) -> dict:
        stats = {"median": value, "min": value, "max": value}
        return {
            "bench": bench,
            "name": name,
            "unit": "x/s",
            "aiayn": stats,
            "peer": None,
            "peer_name": None,
            "ratio": None,
            "ratio_meaning": None,
            "notes": "",
        }

    machine = {"cpu_model": "cpu", "cores": 2, "loadavg_start": [0.1, 0.2, 0.3]}
    old = {
        "format": 1,
        "kind": "cpu",
        "mode": "full",
        "command": "python -m bench --full",
        "started": "2026-11-29T10:00:00Z",
        "seconds": 1400.0,
        "machine": machine,
        "benchmarks": {n: {"seconds": 1.0, "figures": 1, "error": None} for n in "abc"},
        "figures": [fig("a", "a1", 1), fig("b", "b1", 2), fig("b", "b2", 3), fig("c", "c1", 4)],
    }
    new = {
        **old,
        "mode": "default",
        "command": "python -m bench --only b --merge",
        "started": "2026-12-02T07:00:00Z",
        "seconds": 90.0,
        "machine": {**machine, "loadavg_start": [5.0, 4.0, 3.0]},
        "benchmarks": {"b": {"seconds": 90.0, "figures": 3, "error": None}},
        "figures": [fig("b", "b1", 20), fig("b", "b2", 30), fig("b", "b3", 40)],
    }
    merged = merge_reports(old, new)
    assert [(f["name"], f["aiayn"]["median"]) for f in merged["figures"]] == [
        ("a1", 1),
        ("b1", 20),
        ("b2", 30),
        ("b3", 40),
        ("c1", 4),
    ]
    assert merged["benchmarks"]["b"]["seconds"] == 90.0 and merged["mode"] == "full"
    assert merged["merged"][0]["benchmarks"] == ["b"]
    md = render_markdown(merged)
    assert "Updated 2026-12-02T07:00:00Z: b rerun (default, 90 s) with `python -m bench" in md
    assert "load average at start 5.00/4.00/3.00" in md
    again = merge_reports(merged, {**new, "started": "2026-12-03T07:00:00Z"})
    assert len(again["merged"]) == 2 and len(again["figures"]) == 5
