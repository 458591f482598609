"""params.yaml loading: every bad input is an error naming the file, line, key and value."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

import aiayn.config as cfgmod
from aiayn.config import (
    ModelConfig,
    Params,
    describe,
    dump_params,
    fingerprint,
    load_params,
    params_from_dict,
)
from aiayn.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "params.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def _edited(tmp_path: Path, section: str, key: str, value) -> Path:
    """The repo's params.yaml with one value replaced (text edit keeps line numbers)."""
    text = (ROOT / "params.yaml").read_text()
    lines = text.splitlines()
    in_section = False
    for i, line in enumerate(lines):
        if re.match(rf"^{section}:", line):
            in_section = True
            continue
        if in_section and re.match(r"^\S", line):
            break
        if in_section and re.match(rf"^\s+{key}:", line):
            indent = line[: len(line) - len(line.lstrip())]
            lines[i] = f"{indent}{key}: {value}"
            return _write(tmp_path, "\n".join(lines) + "\n")
    raise AssertionError(f"{section}.{key} not in params.yaml")


def _line_of(path: Path, key: str) -> int:
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if re.match(rf"^\s+{key}:", line):
            return i
    raise AssertionError(key)


def test_repo_params_load(demo_params):
    assert demo_params.data.source == "demo"
    assert isinstance(demo_params.train.adam_eps, float)
    assert demo_params.train.adam_eps == pytest.approx(1e-9)


def test_every_section_present_in_repo_params():
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert list(data) == [f.name for f in dataclasses.fields(Params)]
    assert list(data) == [
        "data",
        "clean",
        "tokenizer",
        "shard",
        "model",
        "train",
        "average",
        "translate",
        "score",
    ]


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: params file not found"):
        load_params(tmp_path / "nope.yaml")


def test_empty_file(tmp_path):
    with pytest.raises(ConfigError, match="empty"):
        load_params(_write(tmp_path, ""))


def test_malformed_yaml_names_line(tmp_path):
    p = _write(tmp_path, "data:\n  source: demo\n  corpora: [a, b\nclean: {}\n")
    with pytest.raises(ConfigError, match=r"params\.yaml:\d+: malformed YAML"):
        load_params(p)


def test_not_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_params(_write(tmp_path, "- a\n- b\n"))


def test_unknown_key_names_key_line_and_suggestion(tmp_path):
    text = (ROOT / "params.yaml").read_text().replace("  max_steps:", "  max_step:", 1)
    p = _write(tmp_path, text)
    line = _line_of(p, "max_step")
    with pytest.raises(ConfigError) as e:
        load_params(p)
    msg = str(e.value)
    assert f"params.yaml:{line}: train.max_step is not a known key" in msg
    assert "did you mean train.max_steps" in msg


def test_unknown_section(tmp_path):
    text = (ROOT / "params.yaml").read_text() + "extra:\n  a: 1\n"
    with pytest.raises(ConfigError, match="extra is not a known key"):
        load_params(_write(tmp_path, text))


@pytest.mark.parametrize("key,dotted", [("warmup_steps", "train"), ("train_pairs", "data.demo")])
def test_missing_key(tmp_path, key, dotted):
    text = "\n".join(
        line
        for line in (ROOT / "params.yaml").read_text().splitlines()
        if not line.strip().startswith(f"{key}:")
    )
    with pytest.raises(ConfigError, match=rf"missing key {dotted}\.{key}"):
        load_params(_write(tmp_path, text))


@pytest.mark.parametrize(
    "section,key,value,expect",
    [
        ("train", "max_steps", "abc", r"train\.max_steps must be an integer; got 'abc'"),
        ("train", "max_steps", "1.5", r"train\.max_steps must be an integer; got 1\.5"),
        ("train", "max_steps", "true", r"train\.max_steps must be an integer; got True"),
        ("train", "lr_scale", "fast", r"train\.lr_scale must be a number; got 'fast'"),
        ("train", "compile", "1", r"train\.compile must be true or false; got 1"),
        ("model", "norm", "middle", r"model\.norm must be one of post, pre; got 'middle'"),
        ("data", "source", "wmt19", r"data\.source must be one of demo, wmt14, hf; got 'wmt19'"),
        ("data", "corpora", "[europarl-v7, paracrawl]", r"data\.corpora has unknown item"),
        ("data", "corpora", "[]", r"data\.corpora must not be empty"),
        (
            "data",
            "corpora",
            "[commoncrawl, commoncrawl]",
            r"data\.corpora lists 'commoncrawl' twice",
        ),
        ("data", "corpora", "europarl-v7", r"data\.corpora must be a list"),
        ("model", "d_model", "{a: 1}", r"model\.d_model must be an integer"),
    ],
)
def test_wrong_type(tmp_path, section, key, value, expect):
    p = _edited(tmp_path, section, key, value)
    line = _line_of(p, key)
    with pytest.raises(ConfigError, match=rf"params\.yaml:{line}: {expect}"):
        load_params(p)


@pytest.mark.parametrize(
    "section,key,value,expect",
    [
        ("train", "warmup_steps", "0", r"train\.warmup_steps must be >= 1; got 0"),
        ("train", "label_smoothing", "1.0", r"train\.label_smoothing must be < 1\.0; got 1\.0"),
        ("train", "lr_scale", "0", r"train\.lr_scale must be > 0; got 0\.0"),
        ("model", "dropout", "-0.1", r"model\.dropout must be >= 0\.0; got -0\.1"),
        ("translate", "beam_size", "0", r"translate\.beam_size must be >= 1; got 0"),
        ("clean", "max_ratio", "0.5", r"clean\.max_ratio must be >= 1\.0; got 0\.5"),
        ("tokenizer", "vocab_size", "10", r"tokenizer\.vocab_size must be >= 260 \(byte-level"),
        ("tokenizer", "vocab_size", "100", r"tokenizer\.vocab_size must be >= 260 .*; got 100"),
    ],
)
def test_out_of_range(tmp_path, section, key, value, expect):
    p = _edited(tmp_path, section, key, value)
    with pytest.raises(ConfigError, match=expect):
        load_params(p)


@pytest.mark.parametrize(
    "section,key,value,expect",
    [
        ("model", "n_heads", "5", r"model\.n_heads must divide model\.d_model=192; got 5"),
        ("average", "last", "99", r"average\.last must be <= train\.keep_last=\d+"),
        ("train", "max_tokens", "64", r"train\.max_tokens must be >= shard\.max_tokens_per_side"),
        ("model", "max_positions", "16", r"model\.max_positions must be >="),
        ("translate", "nbest", "5", r"translate\.nbest must be <= translate\.beam_size=4"),
        ("data", "mirror", "ftp://x", r"data\.mirror must start with http://"),
        ("data", "mirror", "http://", r"data\.mirror names no host, like http://www\.statmt"),
        ("data", "mirror", "https:///wmt", r"data\.mirror names no host"),
        ("data", "mirror", "file://", r"data\.mirror names no folder"),
        ("data", "mirror", "http://x:port", r"data\.mirror is not a valid URL"),
    ],
)
def test_cross_field_checks_name_key_and_line(tmp_path, section, key, value, expect):
    p = _edited(tmp_path, section, key, value)
    line = _line_of(p, key)
    with pytest.raises(ConfigError, match=rf"params\.yaml:{line}: {expect}"):
        load_params(p)


def test_float_accepts_int_and_exponent_strings(tmp_path):
    p = _edited(tmp_path, "train", "adam_eps", "1e-9")  # PyYAML reads this as a string
    assert load_params(p).train.adam_eps == pytest.approx(1e-9)
    p = _edited(tmp_path, "train", "lr_scale", "2")
    assert load_params(p).train.lr_scale == 2.0
    assert isinstance(load_params(p).train.lr_scale, float)


def test_dump_round_trips(demo_params):
    again = params_from_dict(yaml.safe_load(dump_params(demo_params)))
    assert again == demo_params


def test_defaults_are_the_paper_base_recipe():
    p = Params()
    assert (p.model.encoder_layers, p.model.d_model, p.model.d_ff, p.model.n_heads) == (
        6,
        512,
        2048,
        8,
    )
    assert (p.train.warmup_steps, p.train.label_smoothing) == (4000, 0.1)
    assert (p.train.adam_beta1, p.train.adam_beta2, p.train.adam_eps) == (0.9, 0.98, 1e-9)
    assert (p.translate.beam_size, p.translate.length_penalty, p.translate.max_len_b) == (
        4,
        0.6,
        50,
    )
    assert p.tokenizer.vocab_size == 37000


def test_fingerprint_stable_and_sensitive():
    a, b = ModelConfig(), ModelConfig()
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(ModelConfig(d_model=256))
    assert fingerprint({"x": 1, "y": 2}, exclude=("y",)) == fingerprint(
        {"x": 1, "y": 3}, exclude=("y",)
    )


def test_every_param_has_help_or_is_self_explanatory():
    rows = describe()
    keys = [k for k, _, _ in rows]
    assert "train.max_steps" in keys and "data.demo.seed" in keys
    assert len(keys) == len(set(keys))


def test_duplicated_key_is_refused_naming_both_lines(tmp_path):
    """PyYAML keeps the last of two equal keys; DVC refuses the file; so do we."""
    lines = (ROOT / "params.yaml").read_text().splitlines()
    at = _line_of(ROOT / "params.yaml", "max_steps")
    lines.insert(at, "  max_steps: 5")
    p = tmp_path / "params.yaml"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        ConfigError,
        match=rf"params\.yaml:{at + 1}: train\.max_steps is given twice "
        rf"\(lines {at} and {at + 1}\); keep one$",
    ):
        load_params(p)


def test_duplicated_section_is_refused_not_a_missing_key(tmp_path):
    text = (ROOT / "params.yaml").read_text()
    first = 1 + [s.split(" ")[0] for s in text.splitlines()].index("model:")
    p = tmp_path / "params.yaml"
    p.write_text(text + "model:\n  d_model: 64\n")
    last = len(p.read_text().splitlines()) - 1
    with pytest.raises(ConfigError, match=rf":{last}: model is given twice \(lines {first} and"):
        load_params(p)


def test_duplicates_are_refused_by_aiayn_params_and_presets(tmp_path, monkeypatch):
    """Every reader of params files goes through the same loader."""
    from aiayn.cli_util import run
    from aiayn.presets import matching_preset

    text = (ROOT / "params.yaml").read_text()
    p = tmp_path / "params.yaml"
    p.write_text(text.replace("score:\n", "score:\n  lowercase: true\n"))
    with pytest.raises(SystemExit) as e:
        from aiayn.cli import app

        run(app, ["params", str(p)])
    assert e.value.code == 1
    assert matching_preset(p, ROOT / "configs") is None  # never "equal" to the demo preset
    p.write_text(text)
    assert matching_preset(p, ROOT / "configs") == "demo"


def test_yaml_aliases_and_huge_values_give_one_line_errors(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("data: &a {x: *a}\n")  # a mapping that contains itself
    with pytest.raises(ConfigError, match=r"data\.x is not a known key"):
        load_params(p)
    p.write_text("data: &a {x: {y: [*a]}, z: {w: *a}}\n")  # and deeper down
    with pytest.raises(ConfigError, match=r"data\.x is not a known key"):
        load_params(p)
    p.write_text("data: " + "9" * 5000 + "\n")  # beyond Python's int-from-text limit
    with pytest.raises(ConfigError, match="unreadable YAML value"):
        load_params(p)
    p.write_text("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a]\n")
    with pytest.raises(ConfigError) as e:
        load_params(p)
    assert "\n" not in str(e.value) and len(str(e.value)) < 300


def test_params_file_not_utf8_names_line_and_offset(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_bytes(b"# ok\ndata:\n  source: d\xe9mo\n")
    with pytest.raises(
        ConfigError, match=r"params\.yaml:3: not UTF-8 text \(byte 0xE9 at offset 22 of"
    ):
        load_params(p)


# ----------------------------------------------------------------------------- built by code


@pytest.mark.parametrize(
    "build, expect",
    [
        (
            lambda: cfgmod.TranslateConfig(beam_size=2, nbest=3),
            "translate.nbest must be <= " "translate.beam_size=2; got 3",
        ),
        (
            lambda: cfgmod.ModelConfig(d_model=192, n_heads=5),
            "model.n_heads must divide " "model.d_model=192; got 5",
        ),
        (lambda: cfgmod.TokenizerConfig(vocab_size=100), "tokenizer.vocab_size must be >= 260"),
        (lambda: cfgmod.DemoConfig(noise=0.9), "data.demo.noise must be <= 0.5; got 0.9"),
        (lambda: cfgmod.DataConfig(corpora=[]), "data.corpora must not be empty"),
        (
            lambda: cfgmod.ModelConfig(norm="middle"),
            "model.norm must be one of post, pre; got " "'middle'",
        ),
        (
            lambda: dataclasses.replace(cfgmod.Params(), average=cfgmod.AverageConfig(last=9)),
            "average.last must be <= train.keep_last=5",
        ),
    ],
)
def test_sections_built_by_code_get_the_params_checks(build, expect):
    """The rules live with the sections (aiayn.config.Section): a section built in code is
    refused with the message params.yaml would give, less the file and line."""
    with pytest.raises(cfgmod.ParamError) as e:
        build()
    assert str(e.value) == expect or str(e.value).startswith(expect)


def test_search_arguments_use_the_same_nbest_rule():
    import torch

    from aiayn.decode.search import beam_search

    src, max_len = torch.tensor([[5, 2]]), torch.tensor([3])
    with pytest.raises(cfgmod.ParamError, match=r"translate\.nbest must be <= translate\."):
        beam_search(object(), src, max_len, beam_size=2, nbest=3)
