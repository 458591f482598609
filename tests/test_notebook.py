"""notebooks/colab.ipynb runs top to bottom, twice, in a kernel of this project's python.

Outside Colab the notebook mounts no Drive, clones nothing and installs nothing: it uses the
checkout it sits in. Here that is a fresh copy of the project (tests/test_pipeline_e2e.py's
``make_project``) with one extra preset, ``configs/ci.yaml``: the demo shrunk to the e2e
test's micro run, chosen through the notebook's ``AIAYN_PRESET`` setting. The second run is
what a user does after a disconnect (Run all): nothing is rerun, everything still works.
The Colab-only cells (Drive, clone, pull) run against a faked ``google.colab`` and a local
upstream repository.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml
from test_pipeline_e2e import BIN, MICRO, _merge, make_project

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "colab.ipynb"
KERNEL = "aiayn-test-venv"


def _kernel_env(tmp: Path, monkeypatch) -> None:
    """A kernelspec for this python (``KERNEL``), Jupyter/IPython state in ``tmp``, and no
    way out to the network for anything the notebook starts."""
    spec = tmp / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "aiayn (.venv)", "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp / "runtime"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("IPYTHONDIR", str(tmp / "ipython"))
    monkeypatch.setenv("PATH", f"{BIN}:{__import__('os').environ['PATH']}")
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # a closed port: any download fails
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("GIT_ALLOW_PROTOCOL", "file")


def _run(nb_path: Path) -> dict:
    """Execute the notebook in its own folder with kernel ``KERNEL``; the executed notebook."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(nb_path, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=600,
        resources={"metadata": {"path": str(nb_path.parent)}},
    )
    client.execute()
    return nb


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.output_type == "stream")


def _pngs(cell) -> int:
    return sum("image/png" in o.get("data", {}) for o in cell.get("outputs", []))


@pytest.mark.slow
def test_the_colab_notebook_runs_on_cpu_and_again_after_a_disconnect(tmp_path, monkeypatch):
    proj = make_project(tmp_path, None)
    demo = yaml.safe_load((proj / "configs" / "demo.yaml").read_text())
    (proj / "configs" / "ci.yaml").write_text(yaml.safe_dump(_merge(demo, MICRO), sort_keys=False))
    _kernel_env(tmp_path, monkeypatch)
    monkeypatch.setenv("AIAYN_PRESET", "ci")
    nb_path = proj / "notebooks" / "colab.ipynb"

    nb = _run(nb_path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    out = [_text(c) for c in code]
    everything = "".join(out)
    assert f"not in Colab: no Drive; the project is the checkout at {proj}" in everything
    assert "git clone" not in everything and "pip install" not in everything
    assert f"aiayn from {proj / 'aiayn'}" in everything  # the checkout's code, not another
    assert (proj / "params.yaml").read_bytes() == (proj / "configs" / "ci.yaml").read_bytes()
    assert "precision: fp32" in everything  # the micro preset pins fp32
    assert "Parameters: " in everything and "Memory of one training step" in everything
    ran = re.findall(r"Running stage '([\w-]+)'", everything)
    assert ran == ["download", "clean", "tokenize", "shard", "train", "average"] + [
        "translate",
        "score",
    ]
    metrics = json.loads((proj / "reports" / "metrics.json").read_text())
    assert re.search(r"^test\b.*BLEU", everything, re.M) and 0 <= metrics["test"]["sacrebleu"]
    assert [_pngs(c) for c in code][-2:] == [1, 1]  # curves, attention picture
    pictures = list((proj / "reports" / "notebook").glob("*.cross.layer1.png"))
    assert len(pictures) == 1 and (proj / "reports/notebook/training_curves.png").is_file()

    again = "".join(_text(c) for c in _run(nb_path).cells if c.cell_type == "code")
    assert "Running stage" not in again
    assert "Data and pipelines are up to date." in again
    assert [_pngs(c) for c in nb.cells if c.cell_type == "code"][-2:] == [1, 1]


def test_the_notebook_and_the_readme_name_the_same_repository():
    """The GitHub owner/name is a placeholder in two places: the badge and the clone URL."""
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    settings = nb.cells[1].source
    assert "parameters" in nb.cells[1].metadata.get("tags", [])
    repo = re.search(r"https://github\.com/([\w.-]+/[\w.-]+?)\.git", settings).group(1)
    readme = (ROOT / "README.md").read_text()
    badge = f"https://colab.research.google.com/github/{repo}/blob/main/notebooks/colab.ipynb"
    assert (
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({badge})"
        in readme
    )
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")  # no outputs kept
    assert nb.metadata["accelerator"] == "GPU"


FAKE_COLAB = """
import sys, types
google, colab, drive = (types.ModuleType(n) for n in ("google", "google.colab", "google.colab.drive"))
MOUNTED = []
drive.mount = MOUNTED.append
google.colab, colab.drive = colab, drive
sys.modules.update({"google": google, "google.colab": colab, "google.colab.drive": drive})
"""


def _git(*args, cwd: Path) -> None:
    import subprocess

    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_in_colab_it_clones_once_then_fast_forwards_and_never_overwrites_edits(
    tmp_path, monkeypatch
):
    """The Colab branch of the first cells, with google.colab faked and a local upstream:
    first run clones into the Drive folder, a re-run pulls, a pull that would overwrite a
    local edit is refused and the notebook goes on."""
    import nbformat
    from nbclient import NotebookClient

    upstream = tmp_path / "upstream"
    upstream.mkdir()
    _git("init", "-q", cwd=upstream)
    _git("config", "user.email", "t@example.com", cwd=upstream)
    _git("config", "user.name", "t", cwd=upstream)
    (upstream / "params.yaml").write_text("a: 1\n")
    _git("add", "-A", cwd=upstream)
    _git("commit", "-qm", "first", cwd=upstream)
    _kernel_env(tmp_path, monkeypatch)
    drive = tmp_path / "drive" / "MyDrive" / "aiayn"
    monkeypatch.setenv("AIAYN_REPO_URL", str(upstream))
    monkeypatch.setenv("AIAYN_DRIVE_PROJECT", str(drive))

    source = nbformat.read(NOTEBOOK, as_version=4)
    settings, where, code = [c.source for c in source.cells if c.cell_type == "code"][:3]
    edit = (
        "(PROJECT / 'params.yaml').write_text('a: 2  # my edit\\n')\n"
        f"open({str(upstream / 'params.yaml')!r}, 'w').write('a: 3\\n')\n"
        f"sh('git', '-C', {str(upstream)!r}, 'commit', '-qam', 'second')"
    )
    undo = "sh('git', 'checkout', 'params.yaml')"
    cells = [FAKE_COLAB, settings, where, code, "print('MOUNTED', MOUNTED)"]
    show = "print(repr((PROJECT / 'params.yaml').read_text()))"
    cells += [edit, where, code, show, undo, where, code]  # Run all after a disconnect, twice
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, kernel_name=KERNEL, timeout=120).execute(cwd=str(tmp_path))
    out = [_text(c) for c in nb.cells]
    assert out[4] == "MOUNTED ['/content/drive']\n"
    assert (drive / ".git").is_dir() and "code: " in out[3] and " first" in out[3]
    # the pull would overwrite the edited params.yaml: git refuses, the notebook goes on
    assert "not updated" in out[7] and " first" in out[7]
    assert out[8] == repr("a: 2  # my edit\n") + "\n"  # the edit is kept
    # without the edit in the way it fast-forwards
    assert "not updated" not in out[11] and " second" in out[11]
    assert (drive / "params.yaml").read_text() == "a: 3\n"
