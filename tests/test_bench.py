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
import statistics
import subprocess
import sys
import types
from pathlib import Path

import pytest

from bench import BENCHMARKS
from bench.report import (
    BUSY_LIMIT,
    FIGURE_KEYS,
    OPTIONAL_KEYS,
    SPREAD_LIMIT,
    CpuUse,
    FigureError,
    build_report,
    busy_reasons,
    check_figure,
    noise_verdict,
    paired_stats,
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


_PAIRED = {"median": 2.0, "min": 1.9, "max": 2.1, "n": 5}


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
        ({"paired": {"median": 1.0, "min": 1.0, "max": 1.0}}, "keys median, min, max, n"),
        ({"paired": {"median": 1.0, "min": 1.0, "max": 1.0, "n": 0}}, "paired.n: expected"),
        ({"ratio": None, "paired": _PAIRED}, "per-round ratios need a ratio"),
        ({"noise": {"noisy": True, "reasons": []}}, "noise: expected {'noisy'"),
    ],
)
def test_check_figure_refuses_what_breaks_the_schema(over, message):
    assert check_figure(_figure(), "t[0]")["ratio"] == 2.0
    with pytest.raises(FigureError, match="t\\[0\\]") as e:
        check_figure(_figure(**over), "t[0]")
    assert message in str(e.value)


def test_markdown_has_one_row_per_figure_and_names_failures():
    figures = [
        {"bench": "a", **check_figure(_figure(ratio=1.2345), "a")},
        {"bench": "a", **check_figure(_figure(name="mem", peer=None, ratio=None), "a")},
        {"bench": "b", **check_figure(_figure(name="y per s", peer=_stat(1.0, 0.9, 1.1)), "b")},
    ]
    report = build_report(
        kind="cpu",
        mode="quick",
        command="python -m bench --quick",
        machine={"cores": 2, "loadavg_start": [3.5, 3.0, 2.0]},
        benchmarks={
            "a": {"error": None, "others_cpu": 0.6},
            "b": {"error": "ValueError: boom", "others_cpu": 0.0},
        },
        figures=figures,
        started="2025-01-01T00:00:00+00:00",
        seconds=12.0,
    )
    md = render_markdown(report)
    rows = [line for line in md.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 3  # header + figures
    assert rows[1].endswith("| x/s |  | 2.00 (1.00–3.00) | 1.00 | 1.23 (noisy) |")
    assert rows[2].endswith("|  |")  # no ratio, no verdict
    # a's machine was busy and its ranges overlap; b's 1.00-3.00 spread is too wide
    noise = [f["noise"] for f in report["figures"]]
    assert noise[1] is None and all(n["noisy"] for n in (noise[0], noise[2]))
    assert "aiayn and peer min–max ranges overlap" in md
    assert "machine busy: other processes used 60% of the CPU time" in md
    assert "per-round spread (max - min) / median 100% (aiayn)" in md
    assert "2 of 2 ratios are marked (noisy)" in md
    assert "- b: ValueError: boom" in md
    assert "timings are noisy" in md  # load 3.5 on 2 cores at the start


def _stat(median: float, lo: float, hi: float) -> dict:
    return {"median": median, "min": lo, "max": hi}


CLEAN = {  # aiayn 2x the peer, tight per-round values, 5 paired rounds
    "aiayn": _stat(2.0, 1.9, 2.1),
    "peer": _stat(1.0, 0.95, 1.05),
    "ratio": 2.0,
    "paired": _PAIRED,
}


@pytest.mark.parametrize(
    ("over", "others_cpu", "reasons"),
    [
        ({}, 0.05, []),
        ({}, None, []),  # not measurable, load fine
        ({"peer": _stat(1.0, 0.95, 1.95)}, 0.0, ["ranges overlap"]),
        ({"paired": {**_PAIRED, "min": 1.5}}, 0.0, ["30% (per-round ratios)"]),
        ({"paired": None, "aiayn": _stat(2.0, 1.5, 2.6)}, 0.0, ["55% (aiayn)"]),
        ({"paired": {**_PAIRED, "n": 1}}, 0.0, ["1 round(s): fewer than 2 timed rounds"]),
        ({"paired": None, "peer": _stat(1.0, 1.0, 1.0)}, 0.0, ["one measurement"]),
        ({}, BUSY_LIMIT + 0.01, ["machine busy: other processes used 26%"]),
        ({"unit": "fraction of batch positions"}, 0.9, []),  # not a timing: load cannot move it
        ({"unit": "GiB", "paired": None, "peer": _stat(1.0, 1.0, 1.0)}, 0.9, []),
        (
            {"peer": _stat(1.0, 0.5, 1.95), "paired": {**_PAIRED, "max": 3.0}},
            0.5,
            ["ranges overlap", "spread", "machine busy"],
        ),
    ],
)
def test_noise_verdict_rules(over, others_cpu, reasons):
    fig = check_figure(_figure(**{**CLEAN, **over}), "t")
    verdict = noise_verdict(fig, busy_reasons({"others_cpu": others_cpu}, {"cores": 2}))
    assert verdict["noisy"] == bool(reasons)
    assert len(verdict["reasons"]) == len(reasons)
    for want, got in zip(reasons, verdict["reasons"], strict=True):
        assert want in got
    assert check_figure({**_figure(**{**CLEAN, **over}), "noise": verdict}, "t")["noise"] == verdict


@pytest.mark.parametrize(
    ("entry", "start", "reasons"),
    [
        ({"others_cpu": 0.1, "loadavg_end": [2.9, 2, 2], "own_cpu": 2.0}, [0.9, 1, 1], []),
        ({"others_cpu": 0.3}, [0.2, 0, 0], ["other processes used 30% of the CPU time"]),
        ({}, [1.5, 1, 1], ["load average 1.50 before the run, above half the 2 cores"]),
        (  # 3.5 after the benchmark, of which its own 2 threads: 1.5 from others
            {"loadavg_end": [3.5, 2, 1], "own_cpu": 2.0},
            [0.1, 0, 0],
            ["load average 3.50 after it, less its own 2.00 CPUs, above half the 2 cores"],
        ),
        ({"loadavg_end": [3.5, 2, 1], "own_cpu": None}, None, []),  # own use unknown
        ({"others_cpu": 0.9, "loadavg_end": [4.0, 2, 1], "own_cpu": 1.0}, [2.0, 2, 2], 3),
    ],
)
def test_busy_reasons_from_cpu_share_and_load_before_and_after(entry, start, reasons):
    """The machine is busy for a benchmark when others took > 25 % of the CPU time while it
    ran, or the load average before the run, or after the benchmark less its own CPU use,
    exceeds half the cores."""
    got = busy_reasons(entry, {"cores": 2, "loadavg_start": start})
    if isinstance(reasons, int):
        assert len(got) == reasons
    else:
        assert len(got) == len(reasons)
        assert all(want in have for want, have in zip(reasons, got, strict=True))


def test_busy_counts_for_timings_only_and_figures_without_ratio_get_no_verdict():
    busy = ["load average 3.00 before the run, above half the 2 cores"]
    fig = check_figure(_figure(**CLEAN), "t")
    assert noise_verdict(fig, busy)["reasons"] == ["machine busy: " + busy[0]]
    sizes = check_figure(_figure(**{**CLEAN, "unit": "GiB"}), "t")
    assert noise_verdict(sizes, busy) == {"noisy": False, "reasons": []}
    assert noise_verdict(check_figure(_figure(ratio=None), "t"), busy) is None


def test_two_runs_agree_within_15_percent_unless_marked_noisy():
    """The rule's promise, simulated: pairs of 7-round runs of two systems whose per-round
    rates carry log-normal noise of 1-30 % (each run its own level, as load comes and goes),
    with a true ratio of 0.7-2.0. Whenever neither run is marked noisy, their ratios agree
    within 15 % (all but a fraction of a percent: a tail remains with any rule)."""
    import random

    rng = random.Random(0)

    def one_run(true_ratio: float) -> dict:
        sigma = rng.uniform(0.01, 0.3)
        ours = [true_ratio * rng.lognormvariate(0, sigma) for _ in range(7)]
        peer = [rng.lognormvariate(0, sigma) for _ in range(7)]
        a, p = _stat(statistics.median(ours), min(ours), max(ours)), _stat(
            statistics.median(peer), min(peer), max(peer)
        )
        fig = _figure(aiayn=a, peer=p, ratio=a["median"] / p["median"])
        fig["paired"] = paired_stats(ours, peer)
        fig = check_figure(fig, "sim")
        return {"ratio": fig["ratio"], "noisy": noise_verdict(fig)["noisy"]}

    clean = disagree = 0
    for _ in range(3000):
        true_ratio = rng.uniform(0.7, 2.0)
        r1, r2 = one_run(true_ratio), one_run(true_ratio)
        if not (r1["noisy"] or r2["noisy"]):
            clean += 1
            disagree += not 1 / 1.15 <= r2["ratio"] / r1["ratio"] <= 1.15
    assert clean > 100  # the rule does not simply mark everything
    assert disagree <= 0.01 * clean, (disagree, clean, SPREAD_LIMIT)


def test_cpu_use_counts_only_other_processes(monkeypatch):
    """others = (machine busy CPU time - this process's) / (wall time x CPUs), within 0..1;
    on Linux the snapshot sees every CPU of the machine."""
    snaps = iter([(0.0, 100.0, 10.0, 2), (10.0, 112.0, 20.0, 2)])  # 12 s busy, 10 s ours
    monkeypatch.setattr(CpuUse, "snapshot", staticmethod(lambda: next(snaps)))
    assert CpuUse().others() == pytest.approx(2.0 / 20.0)
    snaps = iter([(0.0, 0.0, 0.0, 2), (1.0, 1.0, 3.0, 2)])  # children's time counted late
    assert CpuUse().others() == 0.0
    monkeypatch.undo()
    if Path("/proc/stat").exists():
        snap = CpuUse.snapshot()
        assert snap is not None and snap[3] == os.cpu_count()


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
    for f in report["figures"]:  # every floating-point training/decoding figure says its precision
        assert (f["precision"] == "fp32") == (f["bench"] in ("train", "memory", "decode"))
        assert (f["noise"] is None) == (f["ratio"] is None), f["name"]  # every ratio judged
    for name, entry in report["benchmarks"].items():  # what the busy verdict rests on
        assert entry["others_cpu"] is None or 0 <= entry["others_cpu"] <= 1, name
        assert entry["own_cpu"] is None or 0 <= entry["own_cpu"] <= 2 * os.cpu_count(), name
        assert len(entry["loadavg_start"]) == len(entry["loadavg_end"]) == 3, name
    # the memory figure: model-info's estimate against the measured tensor peak of real
    # training steps, within the 15 % the presets' batch sizes rely on
    from aiayn.model import PRESETS
    from aiayn.model_info import parameter_breakdown, step_memory

    mem = next(f for f in report["figures"] if f["bench"] == "memory")
    assert (
        mem["aiayn"]["median"]
        == step_memory(PRESETS["demo"], 8000, 1024, "fp32", "cpu")["total"] / 2**30
    )
    state = 16 * parameter_breakdown(PRESETS["demo"], 8000)["total"] / 2**30  # weights+grads+Adam
    assert state < mem["peer"]["median"] < 2.0
    assert mem["ratio"] == pytest.approx(mem["aiayn"]["median"] / mem["peer"]["median"])
    assert 0.85 <= mem["ratio"] <= 1.15, mem["notes"]
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


def test_tensor_peak_sums_allocations_and_frees_in_time_order():
    """bench_memory's measure: the largest total of CPU tensors alive at once during the
    call (here 1 MiB + 2 MiB, before the first is freed and 0.5 MiB allocated), not the sum
    of all allocations (3.5 MiB) nor what is left at the end (2.5 MiB)."""
    import torch

    from bench.bench_memory import tensor_peak

    kept = []

    def work() -> None:
        a = torch.ones(2**18)  # 1 MiB of float32
        b = torch.ones(2**19)  # 2 MiB
        del a
        kept.extend([b, torch.ones(2**17)])  # 0.5 MiB

    assert tensor_peak(work) == 3 * 2**20
    assert sum(t.numel() * 4 for t in kept) == 2.5 * 2**20


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


# Not needed by the GPU script: dvc and dvclive (the trainer logs no curves without it), and
# the CPU benchmarks' peers. sacremoses stays: the pipeline run's score stage needs it.
BLOCKED = ("dvc", "dvclive", "datasets", "subword_nmt", "psutil")


def test_gpu_script_runs_without_dvc_and_dvclive(tmp_path):
    """bench/gpu.sh --tiny (the GPU script's code on the CPU) in a python where dvc,
    dvclive, datasets, subword-nmt and psutil cannot be imported: the model, trainer step
    and decoder it uses import and run; the batch-size search picks the largest size under
    a simulated memory limit; the pipeline runs every stage, its training stopped by
    SIGTERM after a checkpoint, and ends with a BLEU figure; the JSON has the report's
    format."""
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
        timeout=480,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    # preflight, benchmark and the pipeline's eight stages all ran with the block in place
    assert (tmp_path / "marker").read_text().count("active") >= 2 + 8
    report = _strict_json(out / "bench_gpu.json")
    assert report["mode"] == "tiny"
    _check_report(report, ["matmul", "train demo auto", "train demo bf16", "decode", "pipeline"])
    figs = {f["name"]: f for f in report["figures"]}
    assert all(f["precision"] in ("fp32", "bf16") for f in figs.values())
    from aiayn.hardware import probe_cpu_bf16

    names = ["fp32 (auto)"]  # what train.precision auto picks on a CPU
    if probe_cpu_bf16().slow:  # bf16 on a CPU without native bf16 is refused, so skipped
        assert "bf16 runs" in report["benchmarks"]["train demo bf16"]["skipped"]
    else:
        names.append("bf16")
    for name in names:
        note = figs[f"train tokens/s demo {name}"]["notes"]
        assert "max_tokens 256 " in note and "512 did not" in note
        assert "x 2 micro-batch(es) per step" in note
        assert figs[f"MFU demo {name} (measured matmul)"]["aiayn"]["median"] > 0
    decode = figs["beam-4 decoding sentences/s demo fp32: aiayn vs Marian"]
    assert decode["unit"] == "sentences/s" and "6 of 6" in decode["notes"]
    assert decode["paired"]["n"] == 2
    # the pipeline: every stage, training stopped by SIGTERM after a checkpoint, a score
    bleu = figs["pipeline: test sacreBLEU"]
    assert 0 <= bleu["aiayn"]["median"] <= 100 and "stopped by SIGTERM after 5 s: True" in (
        bleu["notes"]
    )
    assert figs["pipeline: training steps"]["aiayn"]["median"] >= 5  # save_every 5
    wall = figs["pipeline: wall time, download to score"]["notes"]
    assert all(f"{stage} " in wall for stage in ("download", "shard", "train", "score"))
    log = (out / "bench_gpu_pipeline.log").read_text()
    import yaml

    dvc_stages = list(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])
    assert [line[9:] for line in log.splitlines() if line.startswith("== stage ")] == dvc_stages
    assert "stopped at step" in log and "dvclive is not installed" in log
    assert (out / "bench_gpu.md").read_text().startswith("# aiayn benchmarks (cpu, tiny)")
    assert not list(tmp_path.glob("aiayn-gpu-pipeline.*"))  # scratch folder removed


def test_gpu_memory_figure_and_pipeline_params(tmp_path):
    """The GPU memory figure compares step_memory with the measured peak; the pipeline's
    params validate, with the base dimensions in the full run."""
    from aiayn.config import load_params
    from aiayn.model import PRESETS
    from aiayn.model_info import step_memory
    from bench.gpu import memory_figure
    from bench.gpu_pipeline import pipeline_params

    est = step_memory(PRESETS["base"], 37000, 12500, "bf16", "cuda")["total"]
    fig = check_figure(memory_figure("base", "bf16", 12500, 37000, 2, est // 2, est), "m")
    assert fig["ratio"] == pytest.approx(2.0) and fig["aiayn"]["median"] == est / 2**30
    assert "2 micro-batch(es)" in fig["notes"] and fig["precision"] == "bf16"
    assert noise_verdict(fig, ["busy"]) == {"noisy": False, "reasons": []}  # not a timing
    import yaml

    for tiny in (False, True):
        params = pipeline_params(tiny, 1200, 200)
        path = tmp_path / f"params_{tiny}.yaml"
        path.write_text(yaml.safe_dump(params))
        p = load_params(path)
        assert p.train.precision == p.translate.precision == "auto"
        # only grid checkpoints, so that whatever stops training, average finds some
        assert p.train.save_every_minutes == 0
        if not tiny:
            base = PRESETS["base"]
            dims = ("encoder_layers", "decoder_layers", "d_model", "d_ff", "n_heads")
            assert [getattr(p.model, k) for k in dims] == [getattr(base, k) for k in dims]
            assert (p.train.max_steps, p.train.save_every, p.train.warmup_steps) == (1200, 200, 300)
            assert p.average.last <= p.train.max_steps // p.train.save_every


@pytest.mark.parametrize(
    ("seconds", "steps_per_s", "plan"),
    [(180, 5.0, (900, 150)), (180, 0.01, (6, 1)), (100, 2.0, (198, 33))],
)
def test_pipeline_plan_ends_on_the_save_every_grid(seconds, steps_per_s, plan):
    """The pipeline's training is planned in steps: six grid checkpoints, the last at
    max_steps, so that checkpoint averaging (grid checkpoints only) has its three."""
    from bench.gpu_pipeline import plan_steps

    max_steps, save_every = plan_steps(seconds, steps_per_s)
    assert (max_steps, save_every) == plan and max_steps % save_every == 0


def test_pipeline_rate_prefers_the_measured_base_training_rate():
    from bench.gpu import pipeline_rate

    base = {"name": "train tokens/s base bf16 (auto)", "aiayn": {"median": 90_000.0}}
    big = {"name": "train tokens/s big bf16 (auto)", "aiayn": {"median": 30_000.0}}
    mm = {"auto": {"median": 500.0}}  # TFLOP/s
    assert pipeline_rate([big, base], mm, 3000) == (90_000.0, f"{base['name']} measured above")
    rate, source = pipeline_rate([big], mm, 3000)
    from aiayn.model import PRESETS
    from aiayn.model_info import train_flops_per_token

    assert rate == pytest.approx(0.3 * 500e12 / train_flops_per_token(PRESETS["base"], 3000))
    assert "matmul" in source
    assert pipeline_rate([], {}, 3000)[0] == 1000.0


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


# ----------------------------------------------------------------------------- profile


@pytest.mark.parametrize(
    ("op", "group"),
    [
        ("aten::mm", "mm/addmm/bmm"),
        ("aten::addmm", "mm/addmm/bmm"),
        ("aten::bmm", "mm/addmm/bmm"),
        ("aten::_scaled_dot_product_flash_attention_for_cpu_backward", "attention"),
        ("aten::_log_softmax_backward_data", "softmax and loss"),
        ("aten::_fused_adam_", "optimizer"),
        ("aten::native_layer_norm_backward", "layer norm"),
        ("aten::copy_", "other"),
    ],
)
def test_profile_groups(op, group):
    from bench.profile_step import group_of

    assert group_of(op) == group


def test_profile_step_writes_one_markdown_section_per_run(tmp_path, capsys):
    """python -m bench.profile_step at tiny size: per model a row whose group shares add up
    to the whole step, matrix products among them, and the top ops side by side; --append
    keeps the earlier section (the native and the AVX2 runs in one file)."""
    from bench.profile_step import GROUP_NAMES, main

    out = tmp_path / "profile.md"
    tiny = ["--preset", "demo", "--vocab", "200", "--max-tokens", "64", "--rounds", "1"]
    tiny += ["--steps", "1", "--top", "4", "--threads", "1", "--out", str(out)]
    assert main(tiny) == 0
    assert main([*tiny, "--append", "--models", "aiayn"]) == 0
    text = out.read_text()
    assert text.index("### Training step profile: aiayn, marian") < text.index(
        "### Training step profile: aiayn\n"
    )
    assert "batch 2x32" in text and "1 thread(s), CPU kernels" in text
    rows = [line for line in text.splitlines() if line.startswith(("| aiayn |", "| marian |"))]
    assert len(rows) == 3
    for row in rows:
        cells = row.strip("|").split("|")
        shares = [float(c.strip().rstrip("%")) for c in cells[-len(GROUP_NAMES) :]]
        assert sum(shares) == pytest.approx(100.0, abs=0.5)
        assert shares[0] > 0  # mm/addmm/bmm
    assert "| `aten::mm` | mm/addmm/bmm |" in text
    assert capsys.readouterr().out.count("### Training step profile") == 2


def test_gpu_decode_without_transformers_times_aiayn_alone(tmp_path, monkeypatch):
    """Where transformers cannot be imported, the GPU script's decoding case drops the
    Marian row and times aiayn alone (no error), saying why in the notes."""
    import time

    import torch

    from bench import bench_decode, gpu

    def no_transformers(*a, **k):
        raise ImportError("No module named 'transformers'")

    monkeypatch.setattr(bench_decode, "build_models", no_transformers)
    args = gpu.parse_args(["--tiny", "--out", str(tmp_path / "g.json")])
    args.decode_vocab = args.vocab
    figs = gpu.decode_case(torch.device("cpu"), args, time.perf_counter() + 60)
    assert [f["name"] for f in figs] == [
        "beam-4 decoding sentences/s demo fp32",
        "beam-4 decoding tokens/s demo fp32",
    ]
    for f in figs:
        f = check_figure(f, "decode")
        assert f["peer"] is None and f["ratio"] is None and f["aiayn"]["min"] > 0
        assert "no peer (transformers not importable" in f["notes"]
