"""DVC experiments, metrics diffs and plots on a micro run (a copy of the shared one).

`dvc exp run -S translate.beam_size=1` must rerun only translate and score and show the BLEU
change in `dvc metrics diff` and `dvc exp show`; a queued grid must run with `--run-all`; the
training curves declared in dvc.yaml must render (`dvc plots show`) and compare across
experiments (`dvc plots diff`); a `-S` key that does not exist must be named, with the
workspace left intact.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from dvc_support import STAGES, metrics, micro_run, out, run

pytestmark = pytest.mark.slow

CURVES = {
    "loss": ("train/loss.tsv", "dev/loss.tsv"),
    "nll": ("train/nll.tsv", "dev/nll.tsv"),
    "perplexity": ("train/ppl.tsv", "dev/ppl.tsv"),
    "learning_rate": ("train/lr.tsv",),
    "tokens_per_s": ("train/tokens_per_s.tsv",),
    "grad_norm": ("train/grad_norm.tsv",),
}


@pytest.fixture(scope="module")
def proj(tmp_path_factory) -> Path:
    return micro_run(tmp_path_factory, "experiments")


@pytest.fixture
def clean_workspace(proj):
    """Each test starts from (and leaves) the committed micro run."""
    yield proj
    run(["git", "reset", "-q", "--hard"], proj)
    run(["dvc", "checkout", "-q"], proj)
    assert "up to date" in out(["dvc", "status"], proj)


def _ran(output: str) -> list[str]:
    return re.findall(r"Running stage '([\w-]+)'", output)


def _committed_metrics(proj: Path) -> dict:
    return json.loads(out(["git", "show", "HEAD:reports/metrics.json"], proj))


def _experiments(proj: Path) -> dict[str, dict]:
    """name -> exp show data of every experiment (``dvc exp show --json``)."""
    rows = json.loads(out(["dvc", "exp", "show", "--json"], proj))
    found = {}
    for row in rows:
        for exp in row.get("experiments") or []:
            for rev in exp["revs"]:
                found[rev["name"]] = rev["data"]
    return found


def _exp_value(data: dict, file: str, *keys: str):
    kind = "params" if file == "params.yaml" else "metrics"
    node = data[kind][file]["data"]
    for k in keys:
        node = node[k]
    return node


def test_beam_size_experiment_reruns_decoding_only_and_shows_the_bleu_change(clean_workspace):
    proj = clean_workspace
    before = _committed_metrics(proj)
    assert before["test"]["sacrebleu"] > 0  # the micro model translates something
    output = out(["dvc", "exp", "run", "-S", "translate.beam_size=1", "-n", "greedy"], proj)
    assert _ran(output) == ["translate", "score"]
    after = metrics(proj)

    # dvc metrics diff (workspace vs HEAD) lists the BLEU scores with both values.
    diff = json.loads(out(["dvc", "metrics", "diff", "--all", "--json"], proj))
    rows = diff["reports/metrics.json"]
    for split in ("test", "dev"):
        assert rows[f"{split}.sacrebleu"]["old"] == before[split]["sacrebleu"]
        assert rows[f"{split}.sacrebleu"]["new"] == after[split]["sacrebleu"]
    changed = [s for s in ("test", "dev") if before[s]["sacrebleu"] != after[s]["sacrebleu"]]
    assert changed, "greedy and beam 2 gave the same BLEU on both splits"
    table = out(["dvc", "metrics", "diff"], proj)  # the human-readable table
    assert f"{changed[0]}.sacrebleu" in table

    # dvc exp show holds the experiment with its params and metrics next to its baseline.
    exp = _experiments(proj)["greedy"]
    assert _exp_value(exp, "params.yaml", "translate", "beam_size") == 1
    assert (
        _exp_value(exp, "reports/metrics.json", "test", "sacrebleu") == after["test"]["sacrebleu"]
    )
    assert _exp_value(exp, "reports/metrics.json", "dev", "sacrebleu") == after["dev"]["sacrebleu"]


def test_queued_grid_runs_with_run_all(clean_workspace):
    proj = clean_workspace
    earlier = set(_experiments(proj))
    # Hydra's sweep syntax queues one experiment per value.
    out(["dvc", "exp", "run", "--queue", "-S", "translate.beam_size=1,3"], proj)
    assert out(["dvc", "queue", "status"], proj).count("Queued") == 2
    out(["dvc", "exp", "run", "--run-all"], proj, timeout=900)
    ran = [data for name, data in _experiments(proj).items() if name not in earlier]
    by_beam = {_exp_value(data, "params.yaml", "translate", "beam_size"): data for data in ran}
    assert sorted(by_beam) == [1, 3] and len(ran) == 2
    for beam in (1, 3):
        assert _exp_value(by_beam[beam], "reports/metrics.json", "test", "lines") == 60
        assert _exp_value(by_beam[beam], "reports/metrics.json", "test", "sacrebleu") >= 0
    # Queued experiments run in temporary folders: the workspace is untouched.
    assert run(["git", "diff", "--quiet"], proj, ok=False).returncode == 0
    assert "Queued" not in out(["dvc", "queue", "status"], proj)


def test_plots_show_renders_the_declared_training_curves(clean_workspace):
    proj = clean_workspace
    plots = json.loads(out(["dvc", "plots", "show", "--json"], proj))
    assert "errors" not in plots
    data = plots["data"]
    assert set(CURVES) <= set(data)
    for name, files in CURVES.items():
        values = data[name][0]["content"]["data"]["values"]
        assert values, name
        per_file = {}
        for v in values:
            per_file.setdefault(v.get("filename", files[0]), []).append(int(v["step"]))
        assert set(per_file) == set(files), name
        assert max(per_file[files[0]]) == 150  # train rows every log_every up to max_steps
        if len(files) > 1:
            assert sorted(per_file[files[1]]) == [50, 100, 150]  # dev rows every eval_every
    lr = [float(v["lr"]) for v in data["learning_rate"][0]["content"]["data"]["values"]]
    assert lr[0] < max(lr) and lr[-1] < max(lr)  # warmup then decay, equation (3)


def test_plots_diff_compares_a_longer_training_run(clean_workspace):
    proj = clean_workspace
    base = out(["git", "rev-parse", "--short", "HEAD"], proj).strip()
    # 200: on the save_every grid (50), so the last checkpoint is averaged and the model moves.
    output = out(["dvc", "exp", "run", "-S", "train.max_steps=200", "-n", "longer"], proj)
    assert "resuming from" in output
    assert _ran(output) == STAGES[4:]  # train (resumed), average, translate, score
    plots = json.loads(out(["dvc", "plots", "diff", base, "longer", "--json"], proj))["data"]
    for name in ("loss", "learning_rate", "tokens_per_s"):
        values = plots[name][0]["content"]["data"]["values"]
        last = {}
        for v in values:
            last[v["rev"]] = max(last.get(v["rev"], 0), int(v["step"]))
        assert last == {base: 150, "longer": 200}, name


def test_set_param_with_an_unknown_key_is_named_and_leaves_the_workspace(clean_workspace):
    proj = clean_workspace
    params = (proj / "params.yaml").read_bytes()
    translations = (proj / "data/translations/test.de").read_bytes()

    # DVC itself refuses a key that is not in params.yaml.
    p = run(["dvc", "exp", "run", "-S", "translate.beam_sz=1"], proj, ok=False)
    assert p.returncode != 0
    assert "translate.beam_sz" in p.stderr and "not in struct" in p.stderr
    assert (proj / "params.yaml").read_bytes() == params
    assert "up to date" in out(["dvc", "status"], proj)

    # Adding it on purpose (+key) gets past DVC; our params loader names it.
    ours = "translate.beam_sz is not a known key (did you mean translate.beam_size?)"
    p = run(["dvc", "exp", "run", "--temp", "-S", "+translate.beam_sz=1"], proj, ok=False)
    assert p.returncode != 0 and ours in p.stdout + p.stderr
    assert (proj / "params.yaml").read_bytes() == params  # --temp: the workspace is untouched
    assert "up to date" in out(["dvc", "status"], proj)

    # In the workspace DVC writes the key and removes translate's outputs before running it;
    # the stage fails before writing anything, and git + dvc checkout restore everything.
    p = run(["dvc", "exp", "run", "-S", "+translate.beam_sz=1"], proj, ok=False)
    assert p.returncode != 0 and ours in p.stdout + p.stderr
    leftovers = list((proj / "data").glob("translations*/**/*"))
    assert leftovers == [] or (proj / "data/translations/test.de").read_bytes() == translations
    run(["git", "checkout", "params.yaml"], proj)
    run(["dvc", "checkout", "-q"], proj)
    assert "up to date" in out(["dvc", "status"], proj)
    assert (proj / "data/translations/test.de").read_bytes() == translations


def test_plot_curves_renders_the_readme_picture(proj, tmp_path):
    """docs/plot_curves.py: the README's picture from the run's dvclive files."""
    import matplotlib.image

    script = Path(__file__).resolve().parent.parent / "docs" / "plot_curves.py"
    png = tmp_path / "curves.png"
    out([sys.executable, str(script), "--out", str(png), "--title", "micro"], proj)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(png)
    assert image.shape[:2] == (614, 960)  # 10 x 6.4 inches at 96 dpi
    assert image[..., :3].std() > 0.05  # not a blank canvas
    p = run([sys.executable, str(script), "--live", "nowhere", "--out", str(png)], proj, ok=False)
    assert p.returncode == 1
    assert "missing input nowhere/plots/metrics/train/loss.tsv" in p.stderr
