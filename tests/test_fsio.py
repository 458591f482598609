"""Atomic outputs leave nothing half-written; checked inputs name what is missing."""

from __future__ import annotations

import os
import stat

import pytest

from aiayn.errors import AiaynError, MissingInputError
from aiayn.fsio import (
    atomic_dir,
    atomic_file,
    atomic_path,
    count_lines,
    ensure_writable_dir,
    require_inputs,
)


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_atomic_file_writes_on_success(tmp_path):
    target = tmp_path / "out" / "a.txt"
    with atomic_file(target) as f:
        f.write("hello\n")
        assert not target.exists()  # nothing visible until the end
    assert target.read_text() == "hello\n"
    assert _leftovers(target.parent) == []


def test_atomic_file_keeps_old_content_on_failure(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_file(target) as f:
            f.write("partial")
            raise RuntimeError("boom")
    assert target.read_text() == "old\n"
    assert _leftovers(tmp_path) == []


def test_atomic_path_failure_leaves_nothing(tmp_path):
    target = tmp_path / "model.pt"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"x" * 10)
            raise KeyboardInterrupt
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_replaces_only_when_complete(tmp_path):
    target = tmp_path / "raw"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(ValueError):
        with atomic_dir(target) as tmp:
            (tmp / "new.txt").write_text("new")
            raise ValueError("stage failed")
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    with atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert _leftovers(tmp_path) == []


def test_outputs_get_the_umask_mode_not_the_tempfile_mode(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_file(tmp_path / "f.txt") as f:
            f.write("x")
        with atomic_path(tmp_path / "g.bin") as p:
            p.write_bytes(b"x")
        with atomic_dir(tmp_path / "d") as d:
            (d / "x").write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "g.bin").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


def test_require_inputs_names_the_missing_file_and_stage(tmp_path):
    (tmp_path / "a").write_text("x")
    with pytest.raises(
        MissingInputError, match=r"missing input .*/b \(run `dvc repro clean` first\)"
    ):
        require_inputs(tmp_path / "a", tmp_path / "b", stage="clean")


def test_unwritable_output_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(AiaynError, match=r"cannot create output folder .*file/out"):
        ensure_writable_dir(blocker / "out")
    with pytest.raises(AiaynError, match="cannot create output folder"):
        with atomic_file(blocker / "out" / "x.txt") as f:
            f.write("x")


@pytest.mark.parametrize(
    "data,n", [(b"", 0), (b"a\n", 1), (b"a\nb", 2), (b"a\n\n", 2), (b"\n" * 5, 5)]
)
def test_count_lines(tmp_path, data, n):
    p = tmp_path / "x"
    p.write_bytes(data)
    assert count_lines(p) == n
