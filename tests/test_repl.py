"""repl.py: ``python -i repl.py`` loads the latest model and offers tr(), params() and rf()."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import torch
from test_translate_cli import project  # noqa: F401  (fixture: a project with a tiny model)

from aiayn.model import count_parameters

ROOT = Path(__file__).resolve().parent.parent


def _session(folder: Path, commands: str) -> str:
    """Run ``python -i repl.py`` in ``folder`` with ``commands`` typed at its prompt."""
    shutil.copy(ROOT / "repl.py", folder / "repl.py")
    p = subprocess.run(
        [sys.executable, "-i", "repl.py"],
        cwd=folder,
        input=commands,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    return p.stdout + p.stderr


def test_averaged_model_translates_and_counts_parameters(project):  # noqa: F811
    out = _session(
        project,
        'r = tr("the cat sat on the mat")\n'
        'print("TYPE", type(r).__name__, "NL" if "\\n" in r else "ONE")\n'
        'print("MANY", len(tr(["the dog", "", "a red house"], beam_size=1)))\n'
        "total, trainable = params()\n"
        'print("COUNTS", total, trainable)\n',
    )
    assert "loaded" in out and "data/model" in out
    assert "TYPE str ONE" in out
    assert "MANY 3" in out
    state = torch.load(project / "data/model/model.pt", weights_only=True)
    import json

    from aiayn.config import ModelConfig
    from aiayn.model import Transformer

    meta = json.loads((project / "data/model/model.json").read_text())
    model = Transformer(ModelConfig(**meta["model_config"]), meta["vocab_size"])
    model.load_state_dict(state)
    total, trainable = count_parameters(model)
    assert f"COUNTS {total} {trainable}" in out
    assert f"parameters: {total:,} total, {trainable:,} trainable" in out


def test_falls_back_to_the_newest_checkpoint_and_reloads(project, tmp_path):  # noqa: F811
    folder = tmp_path / "p"
    shutil.copytree(project / "data", folder / "data")
    shutil.rmtree(folder / "data" / "model")
    out = _session(
        folder, 'print("T", tr("the dog runs"))\nrf()\nprint("AFTER", model is not None)\n'
    )
    assert "checkpoint_00000200.pt" in out
    assert "reloaded" in out and "AFTER True" in out


def test_without_a_model_it_says_so(tmp_path):
    out = _session(tmp_path, "print('MODEL', model)\n")
    assert "no trained model yet" in out
    assert "MODEL None" in out


def test_att_writes_the_attention_picture(project, tmp_path):  # noqa: F811
    out = _session(
        project,
        f'p = att("the cat sat on the mat", kind="cross", out_dir="{tmp_path}")\n'
        'print("PNG", p.suffix, p.read_bytes()[:4])\n'
        'q = att("a dog", beam_size=1)\n'
        'print("DEFAULT", q.relative_to(ROOT).parent, q.name.endswith(".enc.layer1.png"))\n',
    )
    assert "the cat sat on the mat -> " in out
    assert "PNG .png b'\\x89PNG'" in out
    assert "DEFAULT reports/attention True" in out
    assert [p.suffix for p in tmp_path.iterdir()] == [".png"]
