"""End to end: the whole DVC pipeline on a micro configuration in a fresh copy of the project.

Copies the repository (without .git, .venv, data and caches) into a temporary git repo,
runs ``dvc repro`` with a micro params.yaml, checks every stage's outputs and the metrics,
then checks that a second ``dvc repro`` runs nothing and that a change reruns only the stages
downstream of it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

_IGNORE_ANYWHERE = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".cache",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "__pycache__",
    "*.egg-info",
)
# Pipeline outputs, ignored only at the top level (aiayn/data is code): a dvc repro run in
# the checkout must not leak its lock file or outputs into the copies tests make.
_TOP_LEVEL_OUTPUTS = {"data", "reports", "tmp", "dvc.lock", "dvc_plots"}


def IGNORE(directory: str, names: list[str]) -> set[str]:
    ignored = set(_IGNORE_ANYWHERE(directory, names))
    if Path(directory).resolve() == ROOT:
        ignored |= _TOP_LEVEL_OUTPUTS & set(names)
    return ignored


# Small enough to run in about a minute on two cores, big enough to exercise every stage.
MICRO = {
    "data": {"demo": {"train_pairs": 1500, "dev_pairs": 40, "test_pairs": 60, "noise": 0.1}},
    "tokenizer": {"vocab_size": 400},
    "model": {
        "encoder_layers": 1,
        "decoder_layers": 1,
        "d_model": 32,
        "d_ff": 64,
        "n_heads": 2,
        "dropout": 0.1,
        "max_positions": 256,
    },
    "shard": {"max_tokens_per_side": 96},
    "train": {
        "precision": "fp32",  # the same run on every CPU kind (mixed is bf16 where fast)
        "max_steps": 12,
        "tokens_per_step": 1024,
        "max_tokens": 512,
        "warmup_steps": 4,
        "save_every": 4,
        "keep_last": 2,
        "eval_every": 6,
        "log_every": 2,
    },
    "average": {"last": 2},
    "translate": {"beam_size": 2, "max_tokens": 512},
}


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) else v
    return out


def _run(cmd: list[str], cwd: Path, timeout: int = 600) -> str:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    env.pop("VIRTUAL_ENV", None)
    p = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p.stdout + p.stderr


def _ran(output: str) -> list[str]:
    return re.findall(r"Running stage '([\w-]+)'", output)


def make_project(tmp_path: Path, overrides: dict | None) -> Path:
    """A fresh git repo holding a copy of the project with ``overrides`` merged into params
    (None: params.yaml as it is)."""
    proj = tmp_path / "proj"
    shutil.copytree(ROOT, proj, ignore=IGNORE)
    if overrides is not None:
        params = yaml.safe_load((proj / "params.yaml").read_text())
        text = yaml.safe_dump(_merge(params, overrides), sort_keys=False)
        (proj / "params.yaml").write_text(text)
    _run(["git", "init", "-q"], proj)
    _run(["git", "config", "user.email", "test@example.com"], proj)
    _run(["git", "config", "user.name", "test"], proj)
    _run(["git", "add", "-A"], proj)
    _run(["git", "commit", "-qm", "init"], proj)
    return proj


@pytest.fixture(scope="module")
def micro_project(tmp_path_factory) -> tuple[Path, str]:
    proj = make_project(tmp_path_factory.mktemp("e2e"), MICRO)
    out = _run(["dvc", "repro"], proj, timeout=900)
    return proj, out


@pytest.mark.slow
def test_every_stage_ran_and_wrote_its_outputs(micro_project):
    proj, out = micro_project
    assert _ran(out) == [
        "download",
        "clean",
        "tokenize",
        "shard",
        "train",
        "average",
        "translate",
        "score",
    ]
    raw = proj / "data/raw"
    for corpus in ("europarl-v7", "commoncrawl", "news-commentary-v9"):
        en = (raw / f"train/{corpus}.en").read_text().splitlines()
        de = (raw / f"train/{corpus}.de").read_text().splitlines()
        assert len(en) == len(de) > 0
    assert len((raw / "test/newstest2014.en").read_text().splitlines()) == 60
    assert len((raw / "dev/newstest2013.de").read_text().splitlines()) == 40
    clean_en = (proj / "data/clean/train.en").read_text().splitlines()
    assert 0 < len(clean_en) == len((proj / "data/clean/train.de").read_text().splitlines())
    assert (proj / "reports/data.md").stat().st_size > 0
    data_report = json.loads((proj / "reports/data.json").read_text())
    assert data_report  # per-corpus/per-filter counts
    tok = json.loads((proj / "data/tokenizer/tokenizer.json").read_text())
    assert tok["model"]["type"] == "BPE"
    index = json.loads((proj / "data/shards/index.json").read_text())
    assert index
    ckpts = sorted((proj / "data/checkpoints").glob("checkpoint_*.pt"))
    assert [c.name for c in ckpts][-1] == "checkpoint_00000012.pt"
    assert len(ckpts) == 2  # keep_last
    assert (proj / "data/model/model.pt").exists()
    model_json = json.loads((proj / "data/model/model.json").read_text())
    assert model_json["steps"] == [8, 12]
    hyp = (proj / "data/translations/test.de").read_text().splitlines()
    assert len(hyp) == 60
    assert len((proj / "data/translations/dev.de").read_text().splitlines()) == 40
    metrics = json.loads((proj / "reports/metrics.json").read_text())
    for split in ("test", "dev"):
        assert 0.0 <= metrics[split]["sacrebleu"] <= 100.0
        assert 0.0 <= metrics[split]["bleu_tok"] <= 100.0
        assert "13a" in metrics[split]["signature"]
    live = json.loads((proj / "reports/train/metrics.json").read_text())
    assert live["step"] == 12
    assert live["train"]["tokens"] > 0 and live["train"]["flops"] > live["train"]["tokens"]


@pytest.mark.slow
def test_score_writes_the_run_beside_the_paper(micro_project):
    """reports/paper.md: this run's numbers with the paper's Tables 2 and 3 beside them."""
    proj, _ = micro_project
    text = (proj / "reports/paper.md").read_text()
    metrics = json.loads((proj / "reports/metrics.json").read_text())
    live = json.loads((proj / "reports/train/metrics.json").read_text())
    assert "| Transformer (base model), paper | 27.3 | 3.3·10^18 |" in text
    line = next(x for x in text.splitlines() if x.startswith("| this run (demo test set)"))
    assert f"| {metrics['test']['bleu_tok_t2t_ref']:.1f} |" in line  # Table 2's BLEU
    mantissa = live["train"]["flops"] / 10 ** len(str(int(live["train"]["flops"]))[1:])
    assert f"{mantissa:.1f}·10^" in line
    row = next(x for x in text.splitlines() if x.startswith("| this run |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2:11] == ["1", "32", "64", "2", "16", "16", "0.1", "0.1", "12"]
    assert cells[11:13] == [f"{live['dev']['ppl']:.2f}", ""]
    assert cells[13] == f"{metrics['dev']['bleu_tok']:.1f}"
    assert "| paper base |" in text and "only the direction" in text


@pytest.mark.slow
def test_second_repro_runs_nothing(micro_project):
    proj, _ = micro_project
    out = _run(["dvc", "repro"], proj)
    assert _ran(out) == []
    assert "up to date" in _run(["dvc", "status"], proj)


@pytest.mark.slow
def test_translate_param_change_reruns_translate_and_score_only(micro_project):
    # The micro model is barely trained: its best-scoring outputs are one token long under
    # any beam size or search rules (the same text, so DVC would rightly skip score). A
    # strong length penalty makes long outputs win, so the translations change.
    proj, _ = micro_project
    params = yaml.safe_load((proj / "params.yaml").read_text())
    params["translate"]["length_penalty"] = 5.0
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    before = {p.name: p.read_bytes() for p in (proj / "data/translations").iterdir()}
    try:
        ran = _ran(_run(["dvc", "repro"], proj))
        after = {p.name: p.read_bytes() for p in (proj / "data/translations").iterdir()}
        assert after != before  # the length penalty changed the translations ...
        assert ran == ["translate", "score"]  # ... so score reran, and nothing upstream
    finally:
        params["translate"]["length_penalty"] = 0.6
        (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        _run(["dvc", "repro"], proj)


@pytest.mark.slow
def test_upstream_changes_mark_the_right_stages(micro_project):
    proj, _ = micro_project
    # Editing decoding code invalidates translate, never train.
    decode_file = proj / "aiayn/decode/search.py"
    original = decode_file.read_text()
    decode_file.write_text(original + "\n# edited\n")
    try:
        status = _run(["dvc", "status"], proj)
        assert "translate:" in status
        assert "train:" not in status
    finally:
        decode_file.write_text(original)
    # A tokenizer change invalidates tokenize (and the rest follows once it reruns).
    original = (proj / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["tokenizer"]["vocab_size"] = 300
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        status = _run(["dvc", "status"], proj)
        assert "tokenize:" in status
        assert not any(f"{s}:" in status for s in ("download", "clean", "translate", "score"))
    finally:
        (proj / "params.yaml").write_text(original)
