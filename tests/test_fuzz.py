"""Property-based fuzzing of what users hand the project: any input gives a result or a
one-line error, never a traceback.

Targets: the params loader, the WMT SGML reader, the cleaner's line normaliser, and the
``aiayn score`` and ``aiayn translate`` commands (in-process, through the same ``run``
wrapper as the installed entry point). Examples are derandomised (the same inputs on every
run: CI stays repeatable) and bounded for a busy 2-core machine; a deeper randomised run:
``AIAYN_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz.py -p no:randomly``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiayn.cli_util import run
from aiayn.config import CleanConfig, Params, load_params
from aiayn.data.clean import normalize_block, normalize_line
from aiayn.data.sgml import read_sgml
from aiayn.errors import AiaynError, ConfigError, DataError

ROOT = Path(__file__).resolve().parent.parent
PARAMS_LINES = (ROOT / "params.yaml").read_text().splitlines()
DEEP = int(os.environ.get("AIAYN_FUZZ_EXAMPLES", "0"))


def fuzz(examples: int):
    """Hypothesis settings for one target: ``examples`` inputs (AIAYN_FUZZ_EXAMPLES
    overrides, randomised), no deadline (the machine is shared), files in tmp dirs."""
    return settings(
        max_examples=DEEP or examples,
        derandomize=not DEEP,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def assert_one_line(e: BaseException) -> None:
    """A user-facing error: an AiaynError whose message is one non-empty, bounded line."""
    assert isinstance(e, AiaynError), repr(e)
    msg = str(e)
    assert msg and "\n" not in msg and "\r" not in msg and len(msg) < 600, msg


def run_cli(app, argv: list[str], stdin: bytes = b"") -> tuple[int, str, str]:
    """The command as a program: (exit code, stdout, stderr). A traceback escapes."""
    out, err = io.StringIO(), io.StringIO()
    out.buffer = io.BytesIO()  # type: ignore[attr-defined]  (write_stdout writes bytes)
    stdin_stream = io.TextIOWrapper(io.BytesIO(stdin))
    old_stdin = sys.stdin
    sys.stdin = stdin_stream
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            with pytest.raises(SystemExit) as e:
                run(app, argv)
    finally:
        sys.stdin = old_stdin
    text = out.getvalue() + out.buffer.getvalue().decode("utf-8")  # type: ignore[attr-defined]
    return e.value.code, text, err.getvalue()


def assert_result_or_one_error(code: int, err: str) -> None:
    """Exit 0, or exit 1 with a single ``error:`` line on stderr (progress bars aside)."""
    assert "Traceback" not in err, err
    if code != 0:
        assert code == 1, (code, err)
        lines = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1, err


# ----------------------------------------------------------------------------- params


@fuzz(150)
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_params_loader_on_arbitrary_bytes(tmp_path, data):
    p = tmp_path / "params.yaml"
    p.write_bytes(data)
    try:
        load_params(p)
    except ConfigError as e:
        assert_one_line(e)
        assert str(e).startswith(str(p))


YAML_VALUES = st.one_of(
    st.sampled_from(
        [
            "", "~", "null", "true", "no", "0", "-1", "1e-9", "1e999", ".nan", "-.inf", "[]",
            "{}", "[a, b", "{a: 1}", "'x'", '"\\x00"', "&a 1", "*a", "!!python/object:os.system",
            "!!binary aGk=", "2017-01-01", "0x10", "0o7", "1_000", "9" * 5000, "? [a]",
            "|\n  x", "- 1\n- 2", "europarl-v7", "http://", "file://", "demo", "wmt14",
        ]
    ),
    st.text(max_size=20).filter(lambda s: "\n" not in s),
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True).map(str),
)  # fmt: skip


@st.composite
def edited_params(draw) -> str:
    """The repository's params.yaml with a few random edits: a value replaced, a line
    deleted, duplicated, re-indented or inserted."""
    lines = list(PARAMS_LINES)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["value", "delete", "duplicate", "indent", "insert"]))
        if op == "value" and ":" in lines[i]:
            key = lines[i].split(":", 1)[0]
            lines[i] = f"{key}: {draw(YAML_VALUES)}"
        elif op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "indent":
            lines[i] = " " * draw(st.integers(0, 6)) + lines[i].lstrip()
        else:
            key = draw(st.sampled_from(["x", "data", "model", "train", "  seed", "    d_model"]))
            lines.insert(i, f"{key}: {draw(YAML_VALUES)}")
    return "\n".join(lines) + "\n"


@fuzz(250)
@given(text=edited_params())
def test_params_loader_on_edited_params(tmp_path, text):
    p = tmp_path / "params.yaml"
    p.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        assert isinstance(load_params(p), Params)
    except ConfigError as e:
        assert_one_line(e)
        assert re.match(rf"{re.escape(str(p))}(:\d+)?: ", str(e)), str(e)


# ----------------------------------------------------------------------------- SGML


SGML_LINES = st.one_of(
    st.sampled_from(
        [
            '<srcset setid="t" srclang="en">', '<refset setid="t" trglang="de">', "</srcset>",
            "</refset>", '<doc docid="d1">', "<doc>", "</doc>", "<p>", "</p>", "<hl>",
            "<!-- c -->", '<?xml version="1.0"?>', "", "   ", "<seg>no id</seg>",
            '<seg id="1">one</seg>', '<seg id="1">again</seg>', '<seg id=2>two &amp; &#0;</seg>',
            '<seg id="3">open', f'<seg id="{"9" * 5000}">huge id</seg>',
            '<seg id="\u0663">arabic digit</seg>', '<SEG ID="4">caps</SEG>',
        ]
    ),
    st.builds(lambda i, t: f'<seg id="{i}">{t}</seg>', st.integers(0, 50), st.text(max_size=15)),
    st.text(max_size=30).filter(lambda s: "\n" not in s),
)  # fmt: skip


@st.composite
def sgml_files(draw) -> bytes:
    """A WMT SGML skeleton (set, documents, segments drawn from SGML_LINES), then a few
    random lines deleted, duplicated or replaced."""
    lines = ['<srcset setid="t" srclang="en">']
    for d in range(draw(st.integers(0, 2))):
        lines.append(f'<doc docid="d{d}">')
        lines += draw(st.lists(SGML_LINES, min_size=1, max_size=4))
        lines.append("</doc>")
    lines.append("</srcset>")
    for _ in range(draw(st.integers(0, 2))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "replace"]))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        else:
            lines[i] = draw(SGML_LINES)
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return newline.join(lines).encode("utf-8", "surrogatepass")


@fuzz(300)
@given(content=sgml_files() | st.binary(max_size=200))
def test_sgml_reader_gives_segments_or_one_line(tmp_path, content):
    p = tmp_path / "x.sgm"
    p.write_bytes(content)
    try:
        segs = read_sgml(p)
    except DataError as e:
        assert_one_line(e)
        assert str(e).startswith(str(p))
        return
    assert segs and all(isinstance(s, str) and "\n" not in s for s in segs)


# ----------------------------------------------------------------------------- cleaner


CLEAN_FLAGS = st.builds(
    CleanConfig,
    strip_html=st.booleans(),
    unicode_nfc=st.booleans(),
    remove_control=st.booleans(),
    collapse_whitespace=st.booleans(),
)
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


@fuzz(400)
@given(line=st.text(max_size=60).map(lambda s: s.replace("\n", " ")), cfg=CLEAN_FLAGS)
def test_normalised_line_is_one_line_and_stable(line, cfg):
    """Any line (text without ``\\n``): a str without line breaks (one line stays one line);
    without HTML unescaping (which may reveal new entities) a second pass changes nothing."""
    out = normalize_line(line, cfg)
    assert isinstance(out, str)
    assert not any(c in out for c in LINE_BREAKS), repr(out)
    if not cfg.strip_html:
        assert normalize_line(out, cfg) == out


@fuzz(300)
@given(data=st.binary(max_size=200), cfg=CLEAN_FLAGS)
def test_normalised_block_of_arbitrary_bytes(data, cfg):
    """Any bytes: one output line per input line; invalid UTF-8 counted, never an error."""
    d = normalize_block(data, cfg)
    want = data.split(b"\n") if data else []
    if data.endswith(b"\n"):
        want.pop()
    assert len(d.lines) == len(want)
    assert d.lines == [normalize_line(w.decode("utf-8", "replace"), cfg) for w in want]
    # a line is invalid UTF-8 exactly when decoding with replacement changes its bytes
    assert d.invalid_lines == sum(w.decode("utf-8", "replace").encode() != w for w in want)


# ----------------------------------------------------------------------------- aiayn score


FILE_CONTENT = st.one_of(
    st.binary(max_size=80),
    st.lists(st.text(max_size=25).filter(lambda s: "\n" not in s), max_size=5).map(
        lambda ls: "".join(s + "\n" for s in ls).encode("utf-8", "surrogatepass")
    ),
)


@pytest.fixture(scope="module")
def cli_app():
    from aiayn.cli import app

    return app


@fuzz(60)
@given(hyp=FILE_CONTENT, ref=FILE_CONTENT, lowercase=st.booleans())
def test_score_command_gives_scores_or_one_line(tmp_path, cli_app, hyp, ref, lowercase):
    h, r = tmp_path / "hyp.de", tmp_path / "ref.de"
    h.write_bytes(hyp)
    r.write_bytes(ref)
    argv = ["score", str(h), str(r)] + (["--lowercase"] if lowercase else [])
    code, out, err = run_cli(cli_app, argv)
    assert_result_or_one_error(code, err)
    if code == 0:
        scores = json.loads(out)
        assert 0 <= scores["sacrebleu"] <= 100 and 0 <= scores["chrf"] <= 100
        assert scores["lines"] == len(hyp.split(b"\n")) - hyp.endswith(b"\n")


# ----------------------------------------------------------------------------- aiayn translate


@pytest.fixture(scope="module")
def translate_project(tmp_path_factory):
    from translate_support import build_tiny_project

    return build_tiny_project(tmp_path_factory.mktemp("project"))


TRANSLATE_INPUT = st.one_of(
    st.binary(max_size=60),
    st.lists(st.text(max_size=12), max_size=4).map(
        lambda ls: "\n".join(ls).encode("utf-8", "surrogatepass")
    ),
)


@fuzz(30)
@given(data=TRANSLATE_INPUT, as_file=st.booleans())
def test_translate_command_gives_a_line_per_line_or_one_error(
    tmp_path, cli_app, translate_project, monkeypatch, data, as_file
):
    """File or piped stdin: one output line per input line, or a one-line error."""
    monkeypatch.chdir(translate_project)
    src = tmp_path / "in.en"
    src.write_bytes(data)
    argv = ["translate", "--beam-size", "1"] + ([str(src)] if as_file else [])
    code, out, err = run_cli(cli_app, argv, stdin=b"" if as_file else data)
    assert_result_or_one_error(code, err)
    if code == 0:
        n_lines = len(data.split(b"\n")) - (data.endswith(b"\n") or not data)
        assert out.count("\n") == n_lines
    else:
        assert out == "" and "not UTF-8 text" in err
