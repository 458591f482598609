"""Presets: complete parameter sets under configs/ and `aiayn preset NAME`.

configs/demo.yaml must agree with params.yaml (so users can switch back), base/big must hold
the paper's recipe (section 5, Table 3) as explicit values, the preset command must switch
atomically and refuse to lose edits, and `dvc params diff` must show real values afterwards.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from dvc_support import out
from test_pipeline_e2e import make_project
from typer.testing import CliRunner

from aiayn.cli import app
from aiayn.config import describe, load_params, to_dict
from aiayn.errors import ConfigError
from aiayn.model import PRESETS
from aiayn.model_info import step_memory
from aiayn.presets import (
    apply_preset,
    differences,
    list_presets,
    matching_preset,
    render_model_section,
    write_model_presets,
)

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
GiB = 2**30


def _flat(d: dict, prefix: str = "") -> dict:
    out: dict = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder with a copy of configs/ and params.yaml = configs/demo.yaml."""
    (tmp_path / "configs").mkdir()
    for f in CONFIGS.glob("*.yaml"):
        (tmp_path / "configs" / f.name).write_bytes(f.read_bytes())
    (tmp_path / "params.yaml").write_bytes((CONFIGS / "demo.yaml").read_bytes())
    return tmp_path


# ----------------------------------------------------------------------------- the files


def test_demo_preset_agrees_with_params_yaml():
    demo = yaml.safe_load((CONFIGS / "demo.yaml").read_text())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert differences(demo, params) == [], "configs/demo.yaml and params.yaml disagree"


@pytest.mark.parametrize("name", ["demo", "base", "big"])
def test_presets_are_complete_and_valid(name):
    path = CONFIGS / f"{name}.yaml"
    load_params(path)  # every key present, types and ranges valid
    keys = set(_flat(yaml.safe_load(path.read_text())))
    assert keys == {key for key, _, _ in describe()}
    assert "<<" not in path.read_text() and "&" not in path.read_text()  # no YAML merges


@pytest.mark.parametrize(
    "name, steps, dropout, last, every, hours",
    [("base", 100_000, 0.1, 5, 1250, 12), ("big", 300_000, 0.3, 20, 600, 3.5 * 24)],
)
def test_paper_presets_hold_the_paper_recipe(name, steps, dropout, last, every, hours):
    p = load_params(CONFIGS / f"{name}.yaml")
    assert p.data.source == "wmt14"
    assert p.data.corpora == ["europarl-v7", "commoncrawl", "news-commentary-v9"]
    assert p.tokenizer.vocab_size == 37000
    assert to_dict(p.model) == to_dict(PRESETS[name])  # Table 3
    assert p.model.dropout == dropout and p.model.norm == "post" and p.model.tie_embeddings
    t = p.train
    assert t.max_steps == steps and t.warmup_steps == 4000 and t.lr_scale == 1.0
    assert (t.adam_beta1, t.adam_beta2, t.adam_eps) == (0.9, 0.98, 1e-9)
    assert t.label_smoothing == 0.1
    # Section 6.1: the last 5 / 20 checkpoints written at 10-minute intervals. At the paper's
    # speed (section 5.2) 10 minutes are ~1390 (base) and ~595 (big) steps, so the average
    # spans the last ~7k / ~12k steps; the grid ends at max_steps.
    paper_every = 600 / (hours * 3600 / steps)
    assert t.save_every == every and steps % every == 0
    assert p.average.last == last <= t.keep_last
    assert 0.85 < every / paper_every < 1.15  # so the window (last x every) is within 15 %
    assert round(last * paper_every, -3) == {"base": 7000, "big": 12000}[name]
    tr = p.translate
    assert (tr.beam_size, tr.length_penalty, tr.max_len_a, tr.max_len_b) == (4, 0.6, 1.0, 50)
    # ~25000 tokens per side per step, made of micro-batches that fit a 16 GB GPU in fp16.
    assert t.tokens_per_step == 25000
    accum = math.ceil(t.tokens_per_step / t.max_tokens)
    assert 25000 <= accum * t.max_tokens <= 26000
    mem = step_memory(p.model, p.tokenizer.vocab_size, t.max_tokens, "fp16", "cuda")
    assert mem["total"] <= 10 * GiB  # the estimate, with room for allocator slack


# ----------------------------------------------------------------------------- switching


def test_apply_preset_copies_the_file_and_keeps_the_mode(workdir):
    params = workdir / "params.yaml"
    params.chmod(0o640)
    source = apply_preset("base", params, workdir / "configs")
    assert source == workdir / "configs" / "base.yaml"
    assert params.read_bytes() == source.read_bytes()  # comments included
    assert params.stat().st_mode & 0o777 == 0o640
    assert matching_preset(params, workdir / "configs") == "base"
    assert [p.name for p in workdir.iterdir() if p.name.startswith(".")] == []  # no temp files


def test_apply_preset_refuses_to_lose_edits(workdir):
    params = workdir / "params.yaml"
    edited = params.read_text().replace("max_steps: ", "max_steps: 7", 1)  # e.g. 800 -> 7800
    params.write_text(edited)
    assert matching_preset(params, workdir / "configs") is None
    with pytest.raises(ConfigError, match=r"train\.max_steps: 7\d+, preset demo has \d+"):
        apply_preset("big", params, workdir / "configs")
    assert params.read_text() == edited
    apply_preset("big", params, workdir / "configs", force=True)
    assert matching_preset(params, workdir / "configs") == "big"


def test_unknown_preset_names_the_choices(workdir):
    with pytest.raises(ConfigError, match=r"unknown preset 'huge'.*base, big, demo"):
        apply_preset("huge", workdir / "params.yaml", workdir / "configs")


def test_broken_preset_never_replaces_params(workdir):
    bad = workdir / "configs" / "bad.yaml"
    bad.write_text((CONFIGS / "base.yaml").read_text().replace("  beam_size:", "  beam_sz:"))
    before = (workdir / "params.yaml").read_bytes()
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: translate\.beam_sz is not a known key"):
        apply_preset("bad", workdir / "params.yaml", workdir / "configs")
    assert (workdir / "params.yaml").read_bytes() == before


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_model_sections_are_generated_from_the_code(name):
    """aiayn.model.PRESETS owns the model sections: the committed files are exactly what
    `aiayn preset --write` writes."""
    text = (CONFIGS / f"{name}.yaml").read_text(encoding="utf-8")
    assert render_model_section(text, PRESETS[name]) == text, "run `aiayn preset --write`"


def test_preset_write_rewrites_only_the_model_values(workdir, monkeypatch):
    import dataclasses

    path = workdir / "configs" / "big.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("  d_model: 1024\n", "  d_model: 8\n"), encoding="utf-8")
    wide = dataclasses.replace(PRESETS["big"], dropout=0.25, norm="pre")
    lines = render_model_section(text, wide).split("\n")
    old = text.split("\n")
    changed = [i for i, (a, b) in enumerate(zip(old, lines, strict=True)) if a != b]
    assert [lines[i] for i in changed] == [
        "  dropout: 0.25             # P_drop = 0.3 for big EN-DE (Table 3; 0.1 for EN-FR)",
        "  norm: pre                 # LayerNorm(x + Sublayer(x)), section 3.1",
    ]
    monkeypatch.chdir(workdir)
    res = CliRunner().invoke(app, ["preset", "--write"])
    assert res.exit_code == 0, res.output
    assert "configs/big.yaml: model section rewritten" in res.output
    assert path.read_text(encoding="utf-8") == text  # d_model back to the code's 1024
    assert write_model_presets(workdir / "configs") == []  # nothing left to change


def test_list_presets_in_name_order(workdir):
    assert list(list_presets(workdir / "configs")) == ["base", "big", "demo"]
    with pytest.raises(ConfigError, match="presets folder not found"):
        list_presets(workdir / "nowhere")


def test_preset_command(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    runner = CliRunner()
    res = runner.invoke(app, ["preset"])
    assert res.exit_code == 0
    assert "* demo" in res.output and "  big    configs/big.yaml: wmt14, 6+6 layers" in res.output
    res = runner.invoke(app, ["preset", "big"])
    assert res.exit_code == 0, res.output
    assert "model.d_model: 192 -> 1024" in res.output.replace("'", "")
    assert (workdir / "params.yaml").read_bytes() == (workdir / "configs/big.yaml").read_bytes()
    assert "* big" in runner.invoke(app, ["preset"]).output


def test_dvc_params_diff_shows_real_values_after_switching(tmp_path):
    proj = make_project(tmp_path, {})
    out(["aiayn", "preset", "base"], proj)
    diff = json.loads(out(["dvc", "params", "diff", "--json"], proj))["params.yaml"]
    demo = load_params(proj / "configs" / "demo.yaml")
    assert diff["data.source"] == {"old": "demo", "new": "wmt14"}
    assert diff["model.d_model"]["old"] == demo.model.d_model
    assert diff["model.d_model"]["new"] == 512
    assert diff["train.max_steps"]["old"] == demo.train.max_steps
    assert diff["train.max_steps"]["new"] == 100000
    assert diff["tokenizer.vocab_size"]["new"] == 37000
    # Switching back leaves nothing to diff.
    out(["aiayn", "preset", "demo"], proj)
    assert json.loads(out(["dvc", "params", "diff", "--json"], proj)) == {}
