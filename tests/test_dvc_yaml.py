"""dvc.yaml declares what each stage really uses, so a change reruns exactly what it should.

These are static checks: the stage order, that every declared code dependency exists, that
the modules a stage imports (transitively, inside functions too) are covered by its deps,
that declared params exist in params.yaml, and that the paths in aiayn/paths.py agree.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from aiayn import paths

ROOT = Path(__file__).resolve().parent.parent
STAGES = ["download", "clean", "tokenize", "shard", "train", "average", "translate", "score"]

# Plumbing that does not change results; declaring it would rerun the whole pipeline after
# editing a help text. Package __init__ files hold no logic.
INFRA = {
    "aiayn/__init__.py",
    "aiayn/config.py",
    "aiayn/errors.py",
    "aiayn/fsio.py",
    "aiayn/paths.py",
    "aiayn/cli_util.py",
}


def _dvc() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())


def _names(entries: list) -> list[str]:
    """Paths of deps/outs entries, which are strings or {path: options} mappings."""
    out = []
    for e in entries or []:
        out.append(e if isinstance(e, str) else next(iter(e)))
    return out


def _module_file(module: str) -> Path | None:
    base = ROOT / Path(*module.split("."))
    if base.with_suffix(".py").exists():
        return base.with_suffix(".py")
    if (base / "__init__.py").exists():
        return base / "__init__.py"
    return None


def _aiayn_imports(file: Path) -> set[str]:
    """Modules of the aiayn package imported anywhere in ``file`` (incl. function bodies)."""
    tree = ast.parse(file.read_text(), filename=str(file))
    mods: set[str] = set()
    pkg = ".".join(file.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods |= {a.name for a in node.names if a.name.split(".")[0] == "aiayn"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import
                parts = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != "aiayn":
                continue
            mods.add(base)
            for a in node.names:  # `from aiayn.data import demo` imports a module
                if _module_file(f"{base}.{a.name}") is not None:
                    mods.add(f"{base}.{a.name}")
    return mods


def _closure(start: Path) -> set[str]:
    """Repository-relative files of every aiayn module reachable from ``start``."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        f = todo.pop()
        for mod in _aiayn_imports(f):
            # importing aiayn.a.b also runs aiayn/a/__init__.py
            parts = mod.split(".")
            for i in range(1, len(parts) + 1):
                mf = _module_file(".".join(parts[:i]))
                if mf is None:
                    continue
                rel = mf.relative_to(ROOT).as_posix()
                if rel not in seen:
                    seen.add(rel)
                    todo.append(mf)
    return seen


def test_stages_in_order_with_thin_commands():
    stages = _dvc()["stages"]
    assert list(stages) == STAGES
    for name, st in stages.items():
        assert st["cmd"] == f"python -m stages.{name}"
        assert f"stages/{name}.py" in _names(st["deps"])


@pytest.mark.parametrize("stage", STAGES)
def test_code_deps_exist(stage):
    st = _dvc()["stages"][stage]
    for dep in _names(st["deps"]):
        if dep.startswith(("aiayn/", "stages/")):
            assert (ROOT / dep).exists(), f"{stage}: declared dep {dep} does not exist"


@pytest.mark.parametrize("stage", STAGES)
def test_imported_code_is_declared(stage):
    st = _dvc()["stages"][stage]
    deps = _names(st["deps"])
    used = _closure(ROOT / "stages" / f"{stage}.py")
    missing = [
        f
        for f in sorted(used)
        if f not in INFRA
        and not (f.endswith("/__init__.py") and _is_docstring_only(ROOT / f))
        and not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps)
    ]
    assert not missing, f"stage {stage} imports {missing} but dvc.yaml does not declare them"


def _is_docstring_only(file: Path) -> bool:
    body = ast.parse(file.read_text()).body
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def test_training_does_not_depend_on_decoding_code():
    st = _dvc()["stages"]["train"]
    assert not any(d.startswith("aiayn/decode") for d in _names(st["deps"]))
    assert not any(f.startswith("aiayn/decode") for f in _closure(ROOT / "stages/train.py"))


def test_declared_params_exist():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name, st in _dvc()["stages"].items():
        for key in st.get("params", []):
            node = params
            for part in key.split("."):
                assert isinstance(node, dict) and part in node, f"{name}: param {key} missing"
                node = node[part]


def test_each_section_belongs_to_a_stage():
    """Every params section is tracked by some stage (whole or by key)."""
    declared = {k.split(".")[0] for st in _dvc()["stages"].values() for k in st.get("params", [])}
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(params) == declared


def test_paths_module_agrees_with_outputs():
    stages = _dvc()["stages"]

    def outs(name):
        st = stages[name]
        return set(_names(st.get("outs"))) | set(_names(st.get("metrics")))

    assert paths.RAW.as_posix() in outs("download")
    assert {paths.CLEAN.as_posix(), paths.DATA_REPORT_JSON.as_posix()} <= outs("clean")
    assert paths.TOKENIZER_DIR.as_posix() in outs("tokenize")
    assert paths.SHARDS.as_posix() in outs("shard")
    assert paths.CHECKPOINTS.as_posix() in outs("train")
    assert paths.MODEL.as_posix() in outs("average")
    assert paths.TRANSLATIONS.as_posix() in outs("translate")
    assert paths.METRICS.as_posix() in outs("score")


def test_metrics_are_uncached_and_checkpoints_persist():
    stages = _dvc()["stages"]
    metrics = {
        next(iter(m)): m[next(iter(m))] for st in stages.values() for m in st.get("metrics", [])
    }
    assert metrics["reports/metrics.json"] == {"cache": False}
    ck = next(o for o in stages["train"]["outs"] if isinstance(o, dict) and "data/checkpoints" in o)
    assert ck["data/checkpoints"]["persist"] is True
