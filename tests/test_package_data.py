"""Files under aiayn/ that are not Python reach an installed package only when pyproject.toml
lists them as package data (a wheel carries .py files otherwise): every one must be listed."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_data_file_in_the_package_is_declared():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    declared = pyproject["tool"]["setuptools"]["package-data"]
    data = [
        f
        for f in (ROOT / "aiayn").rglob("*")
        if f.is_file() and f.suffix not in (".py", ".pyc") and "__pycache__" not in f.parts
    ]
    assert any(f.name == "lexicon.txt" for f in data)  # the scan sees the demo lexicon
    missing = [
        f.relative_to(ROOT).as_posix()
        for f in data
        if not any(
            fnmatch(f.name, pattern)
            for pattern in declared.get(".".join(f.parent.relative_to(ROOT).parts), [])
        )
    ]
    assert not missing, f"add {missing} to [tool.setuptools.package-data] in pyproject.toml"
