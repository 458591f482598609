"""No traceback, no silent loss: the faults and bad inputs of the README's "Reliability"
table that belong to no single module. What a user gets is checked: one ``error:`` line
naming the problem and the way out, a failing exit status, and outputs left as they were.

A full disk is simulated two ways without root: ``/dev/full`` (every write fails with
ENOSPC) and ``RLIMIT_FSIZE`` in a child process (a write past the limit is *short*, then
fails with EFBIG: exactly what an unbuffered stdout on a nearly full disk sees).
"""

from __future__ import annotations

import errno
import io
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from translate_support import build_tiny_project

from aiayn.cli_util import run
from aiayn.errors import DataError, OutputError
from aiayn.fsio import write_stdout

ROOT = Path(__file__).resolve().parent.parent
SENTENCES = "the cat sat on the mat . a big red dog runs today".split()


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A tiny trained-looking project (tests/translate_support.py) with the repository's
    params.yaml (greedy decoding: fast) and 60 English lines in ``in.en`` (their
    translations take about 1.5 KB)."""
    root = build_tiny_project(tmp_path_factory.mktemp("project"))
    params = (ROOT / "params.yaml").read_text()
    (root / "params.yaml").write_text(params.replace("  beam_size: 4 ", "  beam_size: 1 "))
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(SENTENCES, size=9)) for _ in range(60)]
    (root / "in.en").write_text("".join(s + "\n" for s in lines))
    return root


def _cli(
    argv: list[str],
    *,
    cwd: Path,
    stdout=subprocess.PIPE,
    fsize: int | None = None,
    unbuffered: bool = False,
) -> subprocess.CompletedProcess:
    """``python -m <argv>`` in a child with the file size limit ``fsize`` (bytes)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env["PYTHONPATH"] = str(ROOT)  # the stages package
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"

    def limit() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run(
        [sys.executable, "-m", *argv],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=limit,
        timeout=300,
    )


def _one_error(stderr: str) -> str:
    """The only ``error:`` line of ``stderr`` (and no traceback)."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    return errors[0]


def _in_process(app, argv, capsys) -> tuple[int, str, str]:
    """``run(app, argv)``: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as e:
        run(app, argv)
    out, err = capsys.readouterr()
    return e.value.code, out, err


# ----------------------------------------------------------------------------- a full disk


class _Buffer:
    """A stdout buffer that takes at most ``step`` bytes a write, ``capacity`` in all, then
    returns 0 (``fail=None``) or raises OSError(``fail``)."""

    def __init__(self, step: int, capacity: int = 1 << 30, fail: int | None = None):
        self.data, self.step, self.capacity, self.fail = bytearray(), step, capacity, fail

    def write(self, b) -> int:
        room = min(self.step, self.capacity - len(self.data), len(b))
        if room <= 0:
            if self.fail is not None:
                raise OSError(self.fail, os.strerror(self.fail))
            return 0
        self.data += bytes(b[:room])
        return room

    def flush(self) -> None:
        pass


class _Stdout(io.StringIO):
    def __init__(self, buffer: _Buffer):
        super().__init__()
        self.buffer = buffer


def test_short_writes_to_stdout_are_continued():
    buf = _Buffer(step=7)
    write_stdout("Das Haus ist klein.\n" * 50, _Stdout(buf))
    assert bytes(buf.data) == ("Das Haus ist klein.\n" * 50).encode()


@pytest.mark.parametrize("fail", [None, errno.ENOSPC])
def test_stdout_that_stops_taking_bytes_is_an_error(fail):
    buf = _Buffer(step=4096, capacity=4096, fail=fail)
    with pytest.raises(OutputError) as e:
        write_stdout("x" * 9772, _Stdout(buf))
    reason = "No space left on device" if fail else "the stream took no more bytes"
    assert str(e.value) == (
        f"cannot write to standard output: {reason} after 4,096 of 9,772 bytes; the output is "
        "incomplete: free some space (or write with -o FILE elsewhere) and rerun"
    )


def test_a_reader_that_stops_reading_ends_the_program_quietly(capsys):
    """`aiayn translate in.en | head -1`: exit 1, no error line, no traceback."""
    from aiayn.cli_util import run_main

    stdout = _Stdout(_Buffer(step=4096, capacity=10, fail=errno.EPIPE))
    with pytest.raises(SystemExit) as e:
        run_main(lambda: write_stdout("Das Haus ist klein.\n" * 50, stdout))
    assert e.value.code == 1
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("unbuffered", [False, True])
def test_stdout_on_a_full_disk_fails_with_one_line(project, unbuffered):
    with open(os.devnull.replace("null", "full"), "w") as full:  # /dev/full
        r = _cli(["aiayn", "params"], cwd=project, stdout=full, unbuffered=unbuffered)
    assert r.returncode == 1
    assert _one_error(r.stderr) == (
        "error: cannot write to standard output: No space left on device; the output is "
        "incomplete: free some space (or write to another disk) and rerun"
    )


@pytest.mark.parametrize("unbuffered,append", [(True, False), (False, True)])
def test_translate_into_a_file_that_hits_the_size_limit(project, tmp_path, unbuffered, append):
    """``aiayn translate in.en > out.de`` on a nearly full disk: once wrote 4,096 of the
    bytes and exited 0 (PYTHONUNBUFFERED=1). Now: exit 1, one line, the file as it was."""
    out = tmp_path / "out.de"
    before = b"an earlier run\n" if append else b""
    out.write_bytes(before)
    with open(out, "ab" if append else "wb") as f:
        r = _cli(
            ["aiayn", "translate", "in.en"],
            cwd=project,
            stdout=f,
            fsize=512 + len(before),
            unbuffered=unbuffered,
        )
    assert r.returncode == 1
    line = _one_error(r.stderr)
    assert line.startswith("error: cannot write to standard output: File too large after ")
    assert line.endswith(
        "the partial output was removed: free some space (or write with -o FILE elsewhere) "
        "and rerun"
    )
    assert out.read_bytes() == before


def test_params_printed_past_the_size_limit_is_an_error_when_unbuffered(project, tmp_path):
    """print() under PYTHONUNBUFFERED once lost the rest of a short write silently."""
    with open(tmp_path / "params.txt", "wb") as f:
        r = _cli(["aiayn", "params"], cwd=project, stdout=f, fsize=1024, unbuffered=True)
    assert r.returncode == 1
    assert _one_error(r.stderr).startswith("error: cannot write to standard output: File too large")


def test_translate_stage_on_a_full_disk_keeps_the_old_output(project):
    clean = project / "data" / "clean"
    clean.mkdir(parents=True, exist_ok=True)
    for split in ("dev", "test"):
        (clean / f"{split}.en").write_bytes((project / "in.en").read_bytes())
    old = project / "data" / "translations"
    old.mkdir(exist_ok=True)
    (old / "dev.de").write_text("previous translations\n")
    r = _cli(["stages.translate"], cwd=project, fsize=512)
    assert r.returncode == 1
    assert _one_error(r.stderr) == (
        "error: cannot write data/translations: File too large; data/translations was left "
        "as it was: free some space (or raise the file size limit) and rerun"
    )
    assert sorted(p.name for p in old.parent.iterdir() if "translations" in p.name) == [
        "translations"
    ]  # no temporary folder left
    assert [p.name for p in old.iterdir()] == ["dev.de"]
    assert (old / "dev.de").read_text() == "previous translations\n"


def test_average_stage_on_a_full_disk_keeps_the_old_model(project, tmp_path):
    """torch.save reports a full disk as a RuntimeError; the stage still says it in one line."""
    model = project / "data" / "model"
    before = {p.name: p.read_bytes() for p in model.iterdir()}
    r = _cli(
        ["stages.average", "--out", str(tmp_path / "model")],
        cwd=project,
        fsize=8192,
    )
    assert r.returncode == 1
    assert _one_error(r.stderr).startswith(
        f"error: cannot write {tmp_path / 'model'}: File too large; "
    )
    assert not (tmp_path / "model").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert {p.name: p.read_bytes() for p in model.iterdir()} == before


# ----------------------------------------------------------------------------- translate


@pytest.fixture
def app(project, monkeypatch):
    from aiayn.cli import app

    monkeypatch.chdir(project)
    return app


class _Terminal:
    """stdin as a terminal: ``isatty()``, and bytes as typed."""

    def __init__(self, data: bytes):
        self.buffer = io.BytesIO(data)

    def isatty(self) -> bool:
        return True


def test_interactive_translate_survives_a_line_that_is_not_utf8(app, monkeypatch, capsys):
    """It once died with a TypeError traceback (the terminal's surrogate escapes reached
    the tokenizer). Now: a one-line error for that line, an empty output line keeps the
    output aligned, the session goes on, and the exit status says something went wrong."""
    monkeypatch.setattr(sys, "stdin", _Terminal(b"the cat\nbad \xff\xfe line\nthe dog\n"))
    code, out, err = _in_process(app, ["translate", "--beam-size", "2"], capsys)
    assert code == 1
    assert _one_error(err) == (
        "error: stdin line 2: not UTF-8 text (byte 0xFF at offset 4 of the line); type or "
        "paste UTF-8 text"
    )
    lines = out.split("\n")
    assert len(lines) == 4 and lines[1] == "" and lines[3] == ""
    code, out2, _ = _in_process(app, ["translate", "--beam-size", "2"], capsys)  # stdin is empty
    assert code == 0


def test_translate_input_not_utf8_names_line_and_offset(app, tmp_path, capsys):
    src = tmp_path / "in.en"
    src.write_bytes(b"fine\nalso fine\ncaf\xe9 au lait\n")
    code, out, err = _in_process(app, ["translate", str(src)], capsys)
    assert code == 1 and out == ""
    assert _one_error(err) == (
        f"error: {src}:3: not UTF-8 text (byte 0xE9 at offset 18 of the file); convert the "
        "file to UTF-8 (e.g. iconv -f latin1 -t utf-8)"
    )


def test_translate_bad_paths_fail_before_translating(app, tmp_path, capsys, monkeypatch):
    from aiayn.decode.translator import Translator

    def no_model(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(Translator, "load", no_model)
    code, _, err = _in_process(app, ["translate", str(tmp_path)], capsys)
    assert code == 1
    assert (
        _one_error(err) == f"error: {tmp_path} is a folder; give a text file, one segment per line"
    )

    code, _, err = _in_process(app, ["translate", "in.en", "-o", str(tmp_path)], capsys)
    assert code == 1
    assert _one_error(err) == (
        f"error: -o {tmp_path} is a folder; give a file name (e.g. {tmp_path}/out.de)"
    )

    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    code, _, err = _in_process(app, ["translate", "in.en", "-o", str(a_file / "out.de")], capsys)
    assert code == 1
    assert _one_error(err).startswith(f"error: cannot create output folder {a_file}: ")
    assert a_file.read_text() == "x"


def test_huge_beam_is_refused_and_running_out_of_memory_is_one_line(app, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"the cat\n")))
    code, _, err = _in_process(app, ["translate", "--beam-size", "300000"], capsys)
    assert code == 1
    assert _one_error(err) == (
        "error: beam_size=300000 is more than the model's 300 tokens: set translate.beam_size "
        "(--beam-size) to at most 300 (the paper uses 4)"
    )

    def allocator_fails(*a, **k):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate "
            "memory: you tried to allocate 94371840000 bytes. Error code 12"
        )

    monkeypatch.setattr("aiayn.decode.search.search", allocator_fails)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"the cat\n")))
    code, out, err = _in_process(app, ["translate", "--beam-size", "200"], capsys)
    assert code == 1 and out == ""
    assert _one_error(err) == (
        "error: out of memory decoding 1 sentence(s) with beam_size=200: lower "
        "translate.beam_size (--beam-size) or translate.max_tokens=4096"
    )


def test_malicious_model_is_refused_without_suggesting_the_unsafe_option(
    project, tmp_path, capsys, monkeypatch
):
    import pickle

    from aiayn.cli import app

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    bad = tmp_path / "model"
    bad.mkdir()
    (bad / "model.json").write_bytes((project / "data/model/model.json").read_bytes())
    with open(bad / "model.pt", "wb") as f:
        pickle.dump({"w": Evil()}, f, protocol=2)
    monkeypatch.chdir(project)
    code, _, err = _in_process(app, ["translate", "--model-dir", str(bad), "in.en"], capsys)
    assert code == 1
    line = _one_error(err)
    assert line.startswith(
        f"error: {bad / 'model.pt'}: refused to load this model: it holds Python objects "
        "beyond tensors and plain values (Unsupported global: GLOBAL "
    )
    assert line.endswith("unpickling them could run code; rebuild it with `dvc repro average`")
    assert "weights_only" not in line and "succeed" not in line
    assert not marker.exists()


# ----------------------------------------------------------------------------- score


def test_score_on_two_empty_files_is_one_line(tmp_path, capsys):
    from aiayn.cli import app

    hyp, ref = tmp_path / "hyp.de", tmp_path / "ref.de"
    hyp.write_text("")
    ref.write_text("")
    code, out, err = _in_process(app, ["score", str(hyp), str(ref)], capsys)
    assert code == 1 and out == ""
    assert _one_error(err) == (
        f"error: {hyp} and {ref} are empty: nothing to score (give one line per segment)"
    )


# ----------------------------------------------------------------------------- training data


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    from train_support import make_shards

    return make_shards(tmp_path_factory.mktemp("data"))


@pytest.mark.parametrize("corruption", ["out_of_vocabulary", "in_vocabulary"])
def test_training_refuses_corrupt_shards_before_any_step(shards, tmp_path, corruption):
    """40 changed ids once trained and checkpointed without a word; an id beyond the
    vocabulary was a raw IndexError mid-run. Training checks every file's sha256 (and, on
    any open, every id against the vocabulary: tests/test_shard.py)."""
    import shutil

    from train_support import tiny_params

    from aiayn.dataset import shard_files
    from aiayn.train.trainer import run_training

    src, tok = shards
    copy = tmp_path / "shards"
    shutil.copytree(src, copy)
    f = copy / shard_files("train")["tgt"]
    ids = np.load(f)
    where = np.flatnonzero(ids > 3)[:40]
    ids[where] = 9999 if corruption == "out_of_vocabulary" else 4 + (ids[where] - 3) % 300
    np.save(f, ids)
    with pytest.raises(
        DataError, match=r"train\.tgt\.npy: sha256 differs .* rerun `dvc repro shard`"
    ):
        run_training(tiny_params(max_steps=2), copy, tok, tmp_path / "ckpt", tmp_path / "live")
    assert not (tmp_path / "ckpt").exists() or not list((tmp_path / "ckpt").iterdir())


# ----------------------------------------------------------------------------- UTF-8 positions


def test_tokenize_and_shard_name_line_and_offset_of_bad_utf8(tmp_path):
    from train_support import write_corpus

    from aiayn.config import ShardConfig, TokenizerConfig
    from aiayn.shard import build_shards
    from aiayn.tokenizer import train_tokenizer

    clean = tmp_path / "clean"
    write_corpus(clean, 60, 5)
    good = (clean / "train.de").read_bytes()
    at = good.index(b"\n", good.index(b"\n") + 1) + 3  # third line, fourth byte
    (clean / "train.de").write_bytes(good[:at] + b"\xfc" + good[at + 1 :])
    line = rf"train\.de:3: not UTF-8 text \(byte 0xFC at offset {at} of the file\)"
    with pytest.raises(DataError, match=line):
        train_tokenizer(TokenizerConfig(300, 1, 0), clean, tmp_path / "t.json", tmp_path / "r")
    (clean / "train.de").write_bytes(good)
    train_tokenizer(TokenizerConfig(300, 1, 0), clean, tmp_path / "t.json", tmp_path / "r")
    (clean / "train.de").write_bytes(good[:at] + b"\xfc" + good[at + 1 :])
    with pytest.raises(DataError, match=line):
        build_shards(ShardConfig(48, 1), clean, tmp_path / "t.json", tmp_path / "s", tmp_path / "j")
    assert not (tmp_path / "s").exists()


# ----------------------------------------------------------------------------- DVC


@pytest.mark.slow
def test_a_second_dvc_repro_is_refused_while_one_runs(tmp_path):
    """What `make demo` twice at once does: DVC's repository lock refuses the second run
    before any stage starts (so two trainers never write one checkpoint folder)."""
    from dvc.repo import Repo

    bin_dir = Path(sys.executable).parent
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([bin_dir / "dvc", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  s:\n    cmd: echo ran > out\n    outs:\n      - out\n"
    )
    with Repo(str(tmp_path)).lock:  # the first `dvc repro`, still running
        second = subprocess.run(
            [bin_dir / "dvc", "repro"], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
    assert second.returncode != 0
    assert second.stderr.startswith("ERROR: Unable to acquire lock.")
    assert not (tmp_path / "out").exists()
