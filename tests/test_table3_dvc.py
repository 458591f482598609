"""``aiayn table3`` end to end on the micro run: queue two Table 3 rows (and the base) as DVC
experiments, run the queue, and render their table from ``dvc exp show --json``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dvc_support import BIN, micro_run, out, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def proj(tmp_path_factory) -> Path:
    return micro_run(tmp_path_factory, "table3")


def _cells(text: str, start: str) -> list[str]:
    line = next(x for x in text.splitlines() if x.startswith(start))
    return [c.strip() for c in line.strip("|").split("|")]


def test_queue_run_all_and_report_two_rows(proj):
    aiayn = str(BIN / "aiayn")
    short = ["-S", "train.max_steps=30", "-S", "train.save_every=10", "-S", "train.eval_every=0"]
    queued = out([aiayn, "table3", "queue", "D1", "E", *short], proj)
    assert "queued 3 experiments" in queued
    status = out(["dvc", "queue", "status"], proj)
    assert status.count("Queued") == 3
    for name in ("t3-base", "t3-D1", "t3-E"):
        assert name in status
    # The same names again are refused before anything is queued.
    again = run([aiayn, "table3", "queue", "D1"], proj, ok=False)
    assert again.returncode == 1 and "error: experiment t3-" in again.stderr
    assert out(["dvc", "queue", "status"], proj).count("Queued") == 3

    out(["dvc", "exp", "run", "--run-all"], proj, timeout=1200)
    assert "Queued" not in out(["dvc", "queue", "status"], proj)
    # Queued experiments run in temporary folders: the workspace is untouched.
    assert run(["git", "diff", "--quiet"], proj, ok=False).returncode == 0

    shown = json.loads(out(["dvc", "exp", "show", "--json"], proj))
    exps = {
        rev["name"]: rev["data"]
        for row in shown
        for exp in row.get("experiments") or []
        for rev in exp["revs"]
    }
    params = {n: exps[n]["params"]["params.yaml"]["data"] for n in ("t3-base", "t3-D1", "t3-E")}
    assert params["t3-base"]["model"]["dropout"] == 0.1
    assert params["t3-D1"]["model"]["dropout"] == 0.0
    assert params["t3-E"]["model"]["positional"] == "learned"
    assert params["t3-E"]["model"]["dropout"] == 0.1  # the base's other values are kept
    assert {p["train"]["max_steps"] for p in params.values()} == {30}  # -S: every experiment

    report = proj / "reports" / "table3.md"
    assert "3 of 19 rows" in out([aiayn, "table3", "report"], proj)
    text = report.read_text()
    for row, name in (("base", "t3-base"), ("(D1)", "t3-D1"), ("(E)", "t3-E")):
        metrics = exps[name]["metrics"]
        ppl = metrics["reports/train/metrics.json"]["data"]["dev"]["ppl"]
        bleu = metrics["reports/metrics.json"]["data"]["dev"]["bleu_tok"]
        cells = _cells(text, f"| {row} |")
        assert cells[11] == f"{ppl:.2f}" and cells[13] == f"{bleu:.1f}", row
    assert _cells(text, "| (D1) |")[8] == "0"  # P_drop
    assert _cells(text, "| (D1) |")[12] == "5.77"  # the paper's perplexity beside ours
    assert _cells(text, "| (E) |")[1] == "positional embedding instead of sinusoids"
    assert "not run" in _cells(text, "| (A1) |")
