"""Translator, the translate stage and the `aiayn translate` command."""

from __future__ import annotations

import json

import pytest
import torch
from decode_fakes import CopyModel
from train_support import FAST_BF16, SLOW_BF16
from translate_support import build_tiny_project
from typer.testing import CliRunner

from aiayn.config import TranslateConfig
from aiayn.decode.translator import (
    Translator,
    _token_batches,
    one_line,
    read_text_lines,
    translate_splits,
)
from aiayn.errors import ConfigError, DataError, MissingInputError

LINES = [
    "the cat sat on the mat",
    "",
    "a dog",
    "   ",
    "the quick brown fox jumps over the lazy dog again and again",
    "hello",
    "one two three four",
    "",
]


class CharTokenizer:
    """ids 4 + ord(c) - 32 for printable ASCII; decode skips specials."""

    vocab_size = 4 + 96

    def encode_batch(self, texts):
        return [[4 + ord(c) - 32 for c in t] for t in texts]

    def decode(self, ids):
        return "".join(chr(i - 4 + 32) for i in ids if i >= 4)


class NewlineTokenizer(CharTokenizer):
    """Decodes with line breaks in the middle (a model emitting newline bytes)."""

    def decode(self, ids):
        return "x\ny\r\u2028z"


# ----------------------------------------------------------------------------- with fakes


@pytest.mark.parametrize("beam_size", [1, 4])
def test_outputs_in_input_order_with_empty_lines(beam_size):
    tr = Translator(CopyModel(100), CharTokenizer())
    cfg = TranslateConfig(beam_size=beam_size, max_tokens=40, max_len_b=5)  # many batches
    out = tr.translate(LINES, cfg)
    expected = ["" if not line.strip() else line for line in LINES]
    assert out == expected


def test_token_batches_respect_max_tokens_and_cover_everything():
    lengths = [3, 17, 5, 5, 9, 1, 30, 2, 12, 12]
    order = sorted(range(len(lengths)), key=lambda j: lengths[j], reverse=True)
    batches = _token_batches(order, lengths, max_tokens=24)
    assert sorted(j for b in batches for j in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) == 1 or len(b) * max(lengths[j] for j in b) <= 24
    assert batches[0] == [6]  # longer than max_tokens: alone


def test_output_lines_never_contain_line_breaks(tmp_path):
    assert one_line("a\nb\rc\u2028d\x85e") == "a b c d e"
    tr = Translator(CopyModel(100), NewlineTokenizer())
    out = tr.translate(["ab", "", "cd"], TranslateConfig(beam_size=2))
    assert out == ["x y  z", "", "x y  z"]


def test_long_sources_are_cut_to_the_model_positions():
    tr = Translator(CopyModel(100), CharTokenizer(), max_positions=8)
    with pytest.warns(UserWarning, match="1 source line.*max_positions-1=7"):
        out = tr.translate(["abcdefghijkl", "abc"], TranslateConfig(beam_size=2))
    assert out == ["abcdefg", "abc"]


def test_nbest_and_bad_settings():
    tr = Translator(CopyModel(100), CharTokenizer())
    res = tr.translate_nbest(["abc", ""], TranslateConfig(beam_size=3, nbest=3))
    assert [t.text for t in res[0]][0] == "abc"
    assert len(res[0]) == 3
    assert [t.score for t in res[0]] == sorted((t.score for t in res[0]), reverse=True)
    assert [t.text for t in res[1]] == [""]
    with pytest.raises(
        ConfigError, match=r"translate\.nbest must be <= translate\.beam_size=2; got 3"
    ):
        tr.translate(["abc"], TranslateConfig(beam_size=2, nbest=3))


def test_read_text_lines_keeps_every_line(tmp_path):
    p = tmp_path / "x.en"
    p.write_bytes("a\u2028b\r\n\nc \n".encode())
    assert read_text_lines(p) == ["a\u2028b", "", "c "]


# ----------------------------------------------------------------------------- real model


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project folder with data/tokenizer/tokenizer.json, two checkpoints and data/model."""
    return build_tiny_project(tmp_path_factory.mktemp("project"))


def test_load_and_translate_with_the_averaged_model(project, monkeypatch):
    monkeypatch.chdir(project)
    meta = json.loads((project / "data/model/model.json").read_text())
    assert meta["tokenizer"] == "data/tokenizer/tokenizer.json"
    tr = Translator.load("data/model", device="cpu")
    assert not tr.model.training and tr.device.type == "cpu"
    cfg = TranslateConfig(max_len_b=5)
    out = tr.translate(LINES, cfg)
    assert len(out) == len(LINES)
    assert [o == "" for o in out] == [not line.strip() for line in LINES]
    assert all("\n" not in o for o in out)
    # Beam search over sorted batches gives what each line gets alone.
    assert out[4] == tr.translate([LINES[4]], cfg)[0]
    # From another folder, the relative tokenizer path is found above the model folder.
    monkeypatch.chdir(project / "data")
    assert Translator.load(project / "data" / "model").translate(LINES[:1], cfg) == out[:1]


def test_precision_choices(project, monkeypatch, cpu_bf16):
    monkeypatch.chdir(project)
    cpu_bf16(FAST_BF16)
    tr = Translator.load("data/model", device="cpu", precision="bf16")
    assert tr.precision.name == "bf16"
    assert len(tr.translate(["the cat", ""], TranslateConfig(max_len_b=3))) == 2
    assert Translator.load("data/model", device="cpu", precision="mixed").precision.name == "bf16"
    with pytest.raises(ConfigError, match="translate.precision is fp16"):
        Translator.load("data/model", device="cpu", precision="fp16")
    # Where bf16 is emulated (AVX2 only), mixed is fp32 and an explicit bf16 is refused.
    cpu_bf16(SLOW_BF16)
    tr = Translator.load("data/model", device="cpu", precision="mixed")
    assert next(tr.model.parameters()).dtype == torch.float32
    assert tr.precision.describe().startswith("precision: fp32 (this CPU has no native bf16")
    with pytest.raises(ConfigError, match="translate.precision is bf16, but bf16 runs 71x slower"):
        Translator.load("data/model", device="cpu", precision="bf16")


def test_half_precision_decodes_like_training_autocast_over_float32_weights(
    project, monkeypatch, cpu_bf16
):
    # As in training: float32 weights and positional table, matrix products in bf16 under
    # autocast, the residual stream (each layer's output) float32. Casting the model to
    # bf16 would round the weights, the positions and the residual stream too.
    monkeypatch.chdir(project)
    cpu_bf16(FAST_BF16)
    tr = Translator.load("data/model", device="cpu", precision="bf16")
    floats = [t for t in (*tr.model.parameters(), *tr.model.buffers()) if t.is_floating_point()]
    assert floats and all(t.dtype == torch.float32 for t in floats)
    seen = {}

    def record(name):
        def hook(module, args, out):
            seen.setdefault(name, out.dtype)

        return hook

    hooks = [
        tr.model.decoder[0].register_forward_hook(record("decoder layer")),
        tr.model.decoder[0].ffn.w1.register_forward_hook(record("linear")),
    ]
    try:
        bf16 = tr.translate(["the cat sat on the mat"], TranslateConfig(max_len_b=5))
    finally:
        for h in hooks:
            h.remove()
    assert seen == {"decoder layer": torch.float32, "linear": torch.bfloat16}
    assert not torch.is_autocast_enabled("cpu")  # only inside the search
    # The same search by hand under training's autocast gives the same translation.
    from aiayn.precision import Precision

    with Precision("bf16", "cpu").autocast_context():
        by_hand = Translator(tr.model, tr.tokenizer).translate(
            ["the cat sat on the mat"], TranslateConfig(max_len_b=5)
        )
    assert by_hand == bf16


def test_model_errors(project, tmp_path, monkeypatch):
    monkeypatch.chdir(project)
    with pytest.raises(MissingInputError, match="run `dvc repro average` first"):
        Translator.load(tmp_path / "nothing")
    bad = tmp_path / "model"
    bad.mkdir()
    (bad / "model.pt").write_bytes((project / "data/model/model.pt").read_bytes())
    meta = json.loads((project / "data/model/model.json").read_text())
    meta["tokenizer_sha256"] = "0" * 64
    (bad / "model.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="is not the tokenizer the model .* was trained with"):
        Translator.load(bad)
    meta = json.loads((project / "data/model/model.json").read_text())
    meta["model_config"]["d_model"] = 32
    (bad / "model.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="does not fit"):
        Translator.load(bad)


def test_translate_splits(project, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(project)
    src = {}
    for split, lines in (("dev", LINES[:3]), ("test", LINES)):
        src[split] = tmp_path / f"{split}.en"
        src[split].write_text("".join(line + "\n" for line in lines))
    out = tmp_path / "translations"
    counts = translate_splits(TranslateConfig(max_len_b=4), project / "data/model", src, out)
    assert counts == {"dev": 3, "test": len(LINES)}
    # the log says which precision and why, in one line
    assert "precision: fp32 (translate.precision: auto is fp32 on CPU" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["dev.de", "test.de"]
    assert len(read_text_lines(out / "test.de")) == len(LINES)
    assert read_text_lines(out / "test.de")[1] == ""
    # A missing source: nothing written, the old folder untouched.
    before = (out / "dev.de").read_bytes()
    with pytest.raises(MissingInputError, match="nope.en"):
        translate_splits(
            TranslateConfig(), project / "data/model", {"dev": tmp_path / "nope.en"}, out
        )
    assert (out / "dev.de").read_bytes() == before


def test_translate_command(project, monkeypatch, tmp_path):
    from aiayn.cli import app

    monkeypatch.chdir(project)  # no params.yaml here: the paper's translate settings
    runner = CliRunner()
    text = "the cat sat\n\na red dog\n"
    result = runner.invoke(app, ["translate", "--beam-size", "2"], input=text)
    assert result.exit_code == 0, result.output
    lines = result.stdout.split("\n")
    assert len(lines) == 4 and lines[1] == "" and lines[3] == ""

    src = tmp_path / "in.en"
    src.write_text(text)
    out = tmp_path / "out.de"
    result = runner.invoke(app, ["translate", str(src), "-o", str(out), "--beam-size", "2"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert read_text_lines(out) == lines[:3]  # the same translations as from stdin

    result = runner.invoke(app, ["translate", "--nbest", "3"], input="the cat\n")
    assert result.exit_code == 0, result.output
    nbest = result.stdout.strip().split("\n")
    assert len(nbest) == 3 and all(line.startswith("0 ||| ") for line in nbest)

    for rules in ("t2t", "fairseq"):
        result = runner.invoke(app, ["translate", "--search-rules", rules], input="the cat\n")
        assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["translate", "--search-rules", "moses"], input="x\n")
    assert result.exit_code == 1 and "--search-rules must be one of t2t, fairseq; got 'moses'" in (
        str(result.exception)
    )
    result = runner.invoke(app, ["translate", "--device", "tpu"], input="x\n")
    assert result.exit_code == 1 and "--device must be one of auto, cpu, cuda" in str(
        result.exception
    )
    result = runner.invoke(app, ["translate", "--model-dir", str(tmp_path / "none")], input="x\n")
    assert "run `dvc repro average` first" in str(result.exception)


def test_decoder_works_without_sacremoses_dvc_and_dvclive(project):
    """bench/gpu.sh machines have only torch, tokenizers, sacrebleu, typer and pandas."""
    import subprocess
    import sys

    code = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("sacremoses", "dvc", "dvclive"):
            raise ImportError("blocked " + name)
sys.meta_path.insert(0, Block())
from aiayn.config import TranslateConfig
from aiayn.decode.translator import Translator
out = Translator.load("data/model", device="cpu").translate(["the cat", ""], TranslateConfig())
assert len(out) == 2 and out[1] == "", out
print("ok")
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
