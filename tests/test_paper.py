"""aiayn.paper and ``aiayn table3``: the paper's Tables 2 and 3 as transcribed, rows as
params keys (absolute and scaled to another base), results read from the pipeline's files
and from ``dvc exp show --json``, and the rendered tables."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from aiayn.cli import app
from aiayn.cli_util import run
from aiayn.config import ModelConfig, params_from_dict, to_dict
from aiayn.model import PRESETS
from aiayn.model_info import parameter_breakdown
from aiayn.paper import (
    BASE,
    BASE_TERMS,
    BIG,
    PPL_NOTE,
    ROW_BY_ID,
    ROWS,
    TABLE2,
    RunResult,
    averaging_note,
    matching_row,
    paper_terms,
    render_grid,
    render_run,
    run_result_from_files,
    run_results_from_exp_show,
    scaled_change,
    select_rows,
    settings,
    table2_bleu,
    terms_of,
)
from aiayn.table3 import DEMO_SCALE, applied, parse_set, plan


@pytest.fixture
def in_project(root, tmp_path, monkeypatch) -> Path:
    """A folder holding a copy of params.yaml, made the working directory: the commands
    read ./params.yaml and nothing is written into the repository."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "params.yaml").write_bytes((root / "params.yaml").read_bytes())
    monkeypatch.chdir(folder)
    return folder


def config_of(terms: dict) -> ModelConfig:
    return ModelConfig(
        encoder_layers=terms["N"],
        decoder_layers=terms["N"],
        d_model=terms["d_model"],
        d_ff=terms["d_ff"],
        n_heads=terms["h"],
        d_k=terms["d_k"],
        d_v=terms["d_v"],
        dropout=terms["P_drop"],
        positional=terms["positional"],
    )


# ----------------------------------------------------------------------------- the paper


def test_the_rows_are_table_3_a_to_e_with_the_paper_base_and_big():
    assert [r.id for r in ROWS] == [
        *("A1", "A2", "A3", "A4", "B1", "B2"),
        *("C1", "C2", "C3", "C4", "C5", "C6", "C7"),
        *("D1", "D2", "D3", "D4", "E"),
    ]
    # the presets are the paper's base and big
    assert terms_of(PRESETS["base"], 0.1) == BASE_TERMS
    assert terms_of(PRESETS["big"], 0.1) == paper_terms(BIG)
    assert (BASE.ppl, BASE.bleu, BASE.params_m, BASE.steps) == (4.92, 25.8, 65, 100_000)
    assert (BIG.ppl, BIG.bleu, BIG.params_m, BIG.steps) == (4.33, 26.4, 213, 300_000)
    assert TABLE2 == {
        "base": {"bleu": 27.3, "flops": 3.3e18},
        "big": {"bleu": 28.4, "flops": 2.3e19},
    }


def test_rows_a_and_c_keep_h_times_d_k_equal_to_d_model_as_in_the_paper():
    for row in ROWS:
        t = paper_terms(row)
        if row.group in "AC":
            assert t["h"] * t["d_k"] == t["h"] * t["d_v"] == t["d_model"], row.id
        elif row.group == "B":
            assert t["d_v"] == 64 and t["d_k"] < 64, row.id


def test_the_paper_parameter_counts_agree_with_the_exact_formula():
    """A check of the transcription (row settings and counts together): the paper's counts
    (in millions, rounded) fit our exact formula with one vocabulary for every row; the
    paper's vocabulary and embedding details are not ours, and ~40.7k fits them."""
    for row in (BASE, *ROWS):
        if row.params_m is None:
            continue
        ours = parameter_breakdown(config_of(paper_terms(row)), 40_700)["total"] / 1e6
        assert abs(ours - row.params_m) < 0.7, row.id
    # and a row without a count has its base's, but for learned positions
    for row in ROWS:
        if row.params_m is None and row.id != "E":
            assert parameter_breakdown(config_of(paper_terms(row)), 1)["total"] == (
                parameter_breakdown(config_of(BASE_TERMS), 1)["total"]
            )


def test_ppl_and_bleu_are_table_3_values_with_its_findings():
    """The paper's findings, as its numbers state them (section 6.2)."""
    r = ROW_BY_ID
    assert r["A1"].bleu == pytest.approx(BASE.bleu - 0.9)  # single-head attention is 0.9 BLEU worse
    assert r["B1"].ppl > r["B2"].ppl > BASE.ppl  # reducing d_k hurts
    assert r["C1"].ppl > r["C2"].ppl > BASE.ppl > r["C3"].ppl  # bigger models are better
    assert r["C4"].ppl > BASE.ppl > r["C5"].ppl and r["C6"].ppl > BASE.ppl > r["C7"].ppl
    assert r["D1"].ppl > BASE.ppl and r["D1"].bleu < BASE.bleu  # dropout helps
    assert r["D3"].ppl < BASE.ppl < r["D4"].ppl  # label smoothing hurts perplexity ...
    assert r["D4"].bleu < BASE.bleu and r["D3"].bleu < BASE.bleu  # ... but helps BLEU at 0.1
    assert r["E"].ppl == BASE.ppl and r["E"].bleu == pytest.approx(
        BASE.bleu - 0.1
    )  # nearly identical


# ----------------------------------------------------------------------------- rows


def test_rows_as_params_keys():
    assert settings(ROW_BY_ID["C1"].change) == {
        "model.encoder_layers": 2,
        "model.decoder_layers": 2,
    }
    assert settings(ROW_BY_ID["A1"].change) == {
        "model.n_heads": 1,
        "model.d_k": 512,
        "model.d_v": 512,
    }
    assert settings(ROW_BY_ID["D3"].change) == {"train.label_smoothing": 0.0}
    assert settings(ROW_BY_ID["E"].change) == {"model.positional": "learned"}


def test_select_rows_by_id_and_group_in_table_order():
    assert [r.id for r in select_rows(["e", "A2", "B"])] == ["A2", "B1", "B2", "E"]
    assert len(select_rows([])) == 18
    with pytest.raises(Exception, match="unknown Table 3 row 'F1'"):
        select_rows(["F1"])


def test_scaled_rows_keep_the_paper_ratios():
    demo = {**BASE_TERMS, "N": 3, "d_model": 128, "d_ff": 512, "h": 8, "d_k": 16, "d_v": 16}
    got = {r.id: scaled_change(r, demo) for r in ROWS}
    assert got["A1"] == {"h": 1, "d_k": 128, "d_v": 128}
    assert got["A4"] == {"h": 32, "d_k": 4, "d_v": 4}
    assert got["B1"] == {"d_k": 4} and got["B2"] == {"d_k": 8}
    assert [got[i]["N"] for i in ("C1", "C2", "C3")] == [1, 2, 4]
    assert got["C4"] == {"d_model": 64, "d_k": 8, "d_v": 8}
    assert got["C7"] == {"d_ff": 1024} and got["D2"] == {"P_drop": 0.2}
    # the paper's own base scales to the paper's rows
    assert all(scaled_change(r, BASE_TERMS) == r.change for r in ROWS)
    with pytest.raises(Exception, match=r"row C1 .* gives N=0\.666667, .* multiple of 3"):
        scaled_change(ROW_BY_ID["C1"], {**demo, "N": 2})


def test_config_matches_a_paper_row():
    assert matching_row(terms_of(PRESETS["base"], 0.1)) is BASE
    assert matching_row(terms_of(PRESETS["big"], 0.1)) is BIG
    assert matching_row(terms_of(PRESETS["base"], 0.0)).id == "D3"
    assert matching_row(terms_of(PRESETS["demo"], 0.1)) is None


# ----------------------------------------------------------------------------- results


def _write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def _run_files(tmp_path: Path, cfg: ModelConfig) -> RunResult:
    model = _write(
        tmp_path / "model.json",
        {"model_config": to_dict(cfg), "vocab_size": 37000, "steps": [95000, 97500, 100000]},
    )
    train = _write(
        tmp_path / "train.json",
        {
            "step": 100000,
            "train": {"tokens": 2.5e9, "flops": 9.1e17},
            "dev": {"ppl": 4.81},
        },
    )
    scores = _write(
        tmp_path / "m.json",
        {"dev": {"bleu_tok": 26.03}, "test": {"bleu_tok": 26.2, "bleu_tok_t2t_ref": 27.71}},
    )
    return run_result_from_files("run", model, train, scores, 0.1, "wmt14")


def test_table2_bleu_is_the_t2t_reference_figure_else_bleu_tok():
    assert table2_bleu({"test": {"bleu_tok": 26.2, "bleu_tok_t2t_ref": 27.7}}) == 27.7
    assert table2_bleu({"test": {"bleu_tok": 26.2}}) == 26.2  # metrics from before it
    assert table2_bleu({"dev": {"bleu_tok": 26.2}}) is None


def test_run_report_puts_the_paper_beside_the_run(tmp_path):
    run_ = _run_files(tmp_path, PRESETS["base"])
    assert (run_.dev_ppl, run_.dev_bleu, run_.test_bleu, run_.steps) == (4.81, 26.03, 27.71, 100000)
    text = render_run(run_)
    assert "| Transformer (base model), paper | 27.3 | 3.3·10^18 |" in text
    assert "| Transformer (big), paper | 28.4 | 2.3·10^19 |" in text
    assert "| this run (newstest2014) | 27.7 | 9.1·10^17 |" in text
    line = next(x for x in text.splitlines() if x.startswith("| this run = base"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[2:11] == ["6", "512", "2048", "8", "64", "64", "0.1", "0.1", "100K"]
    assert cells[11:] == ["4.81", "4.92", "26.0", "25.8", "63.08", "65"]
    assert PPL_NOTE in text and "2,500,000,000 target tokens" in text
    assert "paper big" in text and "paper base" not in text  # the base is this run's line
    assert "this run averages 3 checkpoints (steps 95000-100000)" in text


def test_averaging_note_says_what_was_decoded():
    assert "so does this run (the checkpoint of step 300)" in averaging_note([300])
    assert "averages 2 checkpoints (steps 200-300)" in averaging_note([200, 300])
    assert "the last `average.last` checkpoints" in averaging_note(None)


def test_run_report_of_a_configuration_outside_table_3(tmp_path):
    run_ = _run_files(tmp_path, PRESETS["demo"])
    run_.source = "demo"
    text = render_run(run_)
    assert "| this run |" in text and "| paper base |" in text
    assert "differs from the base model in N 2 (paper 6), d_model 192 (paper 512)" in text
    assert "not WMT14" in text


def test_missing_pipeline_files_are_named(tmp_path):
    with pytest.raises(Exception, match=r"missing input .*model\.json \(run `dvc repro average`"):
        run_result_from_files(
            "x", tmp_path / "model.json", tmp_path / "t", tmp_path / "m", 0.1, "demo"
        )


def exp_show(results: dict[str, dict], prefix: str = "t3") -> list[dict]:
    """A ``dvc exp show --json`` document: a workspace row and a baseline with experiments
    named <prefix>-<id> whose params set the given model keys."""
    base_params = to_dict(params_from_dict(yaml.safe_load(Path("params.yaml").read_text())))

    def rev(name, model, ppl, bleu):
        params = json.loads(json.dumps(base_params))
        params["model"].update(model)
        return {
            "rev": f"{abs(hash(name)):x}"[:7],
            "name": name,
            "data": {
                "params": {"params.yaml": {"data": params}},
                "metrics": {
                    "reports/train/metrics.json": {
                        "data": {
                            "step": 200,
                            "dev": {"ppl": ppl},
                            "train": {"tokens": 1e5, "flops": 2e12},
                        }
                    },
                    "reports/metrics.json": {
                        "data": {"dev": {"bleu_tok": bleu}, "test": {"bleu_tok": bleu + 1}}
                    },
                },
            },
        }

    exps = [{"revs": [rev(f"{prefix}-{i}", *v)]} for i, v in results.items()]
    exps.append({"revs": [rev("other-A1", {}, 1.0, 99.0)]})
    return [
        {"rev": "workspace", "name": None, "data": {}},
        {"rev": "abc1234", "name": "main", "data": {}, "experiments": exps},
    ]


def test_grid_report_from_exp_show(in_project):
    doc = exp_show(
        {"base": ({}, 20.0, 30.0), "A1": ({"n_heads": 1, "d_k": 192, "d_v": 192}, 22.5, 27.5)}
    )
    results = run_results_from_exp_show(doc, "t3")
    assert set(results) == {"base", "A1"}
    text = render_grid(results, "t3")
    a1 = next(x for x in text.splitlines() if x.startswith("| (A1)"))
    cells = [c.strip() for c in a1.strip("|").split("|")]
    assert cells[1] == "h=1, d_k=512, d_v=512"
    assert cells[5:8] == ["1", "192", "192"]
    assert cells[11:15] == ["22.50", "5.29", "27.5", "24.9"]
    assert cells[17:] == ["+2.50", "+0.37", "-2.5", "-0.9"]
    b1 = next(x for x in text.splitlines() if x.startswith("| (B1)"))
    assert "not run" in b1
    assert "| grid base (demo test set) | 31.0 | 2.0·10^12 |" in text


# ----------------------------------------------------------------------------- command


def test_parse_set_checks_keys_and_reads_yaml_values(demo_params):
    params = to_dict(demo_params)
    got = parse_set(
        ["model.d_k=16", "model.positional=learned", "train.label_smoothing=0.0"], params
    )
    assert got == {"model.d_k": 16, "model.positional": "learned", "train.label_smoothing": 0.0}
    for bad, message in [
        ("model.dk=1", "-S model.dk=1: model.dk is not a key of params.yaml"),
        ("model=1", "model is a section"),
        ("model.d_k", "expected key=value"),
    ]:
        with pytest.raises(Exception, match=re.escape(message)):
            parse_set([bad], params)


def test_plan_validates_every_row_and_keeps_the_base_elsewhere(demo_params):
    params = to_dict(demo_params)
    runs = dict(plan(params, dict(DEMO_SCALE), [], True, "t3"))
    assert len(runs) == 19 and runs["t3-base"] == DEMO_SCALE
    for name, changes in runs.items():
        p = params_from_dict(applied(params, changes))
        assert p.train.max_steps == DEMO_SCALE["train.max_steps"], name
    a4 = params_from_dict(applied(params, runs["t3-A4"])).model
    assert (a4.n_heads, a4.head_dims, a4.d_model, a4.encoder_layers) == (32, (2, 2), 64, 3)
    # absolute rows: the paper's values on top of this base, its other values kept
    runs = dict(plan(params, {}, ["A4", "D2"], False, "t3"))
    a4 = params_from_dict(applied(params, runs["t3-A4"])).model
    assert (a4.n_heads, a4.head_dims, a4.d_model) == (32, (16, 16), demo_params.model.d_model)
    assert runs["t3-D2"] == {"model.dropout": 0.2} and runs["t3-base"] == {}
    # a base that is not valid is named before anything is queued
    with pytest.raises(Exception, match=r"with the -S settings:\d*:? ?model\.n_heads must"):
        plan(params, {"model.n_heads": 5}, ["A4"], False, "t3")


def test_queue_dry_run_prints_the_dvc_commands(in_project):
    args = ["table3", "queue", "--dry-run", "-S", "train.max_steps=50", "A1", "e"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "dvc exp run --queue -n t3-base -S train.max_steps=50",
        "dvc exp run --queue -n t3-A1 -S train.max_steps=50 -S model.n_heads=1 "
        "-S model.d_k=512 -S model.d_v=512",
        "dvc exp run --queue -n t3-E -S train.max_steps=50 -S model.positional=learned",
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (["queue", "--dry-run", "Z9"], "unknown Table 3 row 'Z9'"),
        (["queue", "--dry-run", "-S", "model.nope=1"], "model.nope is not a key"),
        (["queue", "--dry-run", "--relative", "C"], "row C1 (N=2) scaled to the base's N=2"),
        (["report", "--exp-show", "nowhere.json"], "nowhere.json: cannot read"),
    ],
)
def test_command_errors_are_one_line(in_project, capsys, args, message):
    with pytest.raises(SystemExit) as e:
        run(app, ["table3", *args])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_report_command_writes_the_table(in_project, tmp_path):
    doc = tmp_path / "exp.json"
    doc.write_text(json.dumps(exp_show({"base": ({}, 20.0, 30.0)}, prefix="g")))
    out = tmp_path / "t3.md"
    result = CliRunner().invoke(
        app, ["table3", "report", "--prefix", "g", "--exp-show", str(doc), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "1 of 19 rows" in result.output
    assert out.read_text().count("\n| (") == 18
    empty = CliRunner().invoke(app, ["table3", "report", "--exp-show", str(doc), "-o", str(out)])
    assert empty.exit_code == 1 and "no experiments named t3-<row>" in str(empty.exception)


def test_a_run_without_training_metrics_renders_with_blanks(tmp_path):
    """Training without dvclive (bench/gpu.sh) writes no reports/train/metrics.json: the
    score stage passes None and the report still puts BLEU beside the paper."""
    full = _run_files(tmp_path, PRESETS["base"])
    run_ = run_result_from_files(
        "run", tmp_path / "model.json", None, tmp_path / "m.json", 0.1, "wmt14"
    )
    assert (run_.dev_ppl, run_.flops, run_.tokens, run_.steps) == (None, None, None, None)
    assert run_.test_bleu == full.test_bleu == 27.71
    text = render_run(run_)
    assert "| Transformer (base model), paper | 27.3 | 3.3·10^18 |" in text
    assert "| this run (newstest2014) | 27.7 |" in text
