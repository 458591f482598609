"""Checkpoint files: weights-only round trip, RNG states, rotation, temp files, resume
choices, and which params the fingerprint covers."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from train_support import tiny_params

from aiayn.checkpoint import (
    FORMAT,
    CheckpointError,
    capture_rng,
    checkpoint_reason,
    find_resume,
    grid_checkpoints,
    list_checkpoints,
    load_checkpoint,
    restore_rng,
    rotate,
    save_checkpoint,
    save_reason,
    training_fingerprint,
)
from aiayn.errors import OutputError


def _state(step: int, fp: str = "f" * 64, reason: str = "grid") -> dict:
    return {
        "reason": reason,
        "format": FORMAT,
        "step": step,
        "model": {"w": torch.full((2, 3), float(step))},
        "model_config": {"d_model": 8},
        "vocab_size": 300,
        "fingerprint": fp,
        "optimizer": {"state": {0: {"step": torch.tensor(float(step))}}, "param_groups": []},
        "scaler": {},
        "rng": [capture_rng()],
        "sampler": [{"epoch": 0, "position": step, "layout_sha256": "ab"}],
    }


def test_round_trip_weights_only_and_rng(tmp_path):
    random.seed(5)
    np.random.seed(6)
    torch.manual_seed(7)
    np.random.randn()  # leave a cached Gaussian in NumPy's state
    path = save_checkpoint(_state(12), tmp_path, keep_last=5)
    assert path.name == "checkpoint_00000012.pt"
    raw = torch.load(path, weights_only=True)  # the contract: no arbitrary unpickling
    assert raw["step"] == 12 and torch.equal(raw["model"]["w"], torch.full((2, 3), 12.0))
    want = (random.random(), float(np.random.rand()), np.random.randn(), torch.rand(3))
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    restore_rng(raw["rng"][0])
    got = (random.random(), float(np.random.rand()), np.random.randn(), torch.rand(3))
    assert got[:3] == want[:3] and torch.equal(got[3], want[3])


def test_rotation_keeps_the_last_n(tmp_path):
    for step in (1, 2, 3, 10, 11):
        save_checkpoint(_state(step), tmp_path, keep_last=3)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [3, 10, 11]
    (tmp_path / "notes.txt").write_text("mine")
    assert rotate(tmp_path, 1) == [
        tmp_path / "checkpoint_00000003.pt",
        tmp_path / "checkpoint_00000010.pt",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_00000011.pt", "notes.txt"]


def test_rotation_keeps_keep_last_grid_checkpoints_between_timer_and_signal_ones(tmp_path):
    # save_every 10, keep_last 3, a timer checkpoint (every few minutes on a slow machine)
    # between every two grid ones and a signal one at the end: the grid checkpoints the
    # average needs all stay; only the newest off-grid one is kept, for resuming.
    timer = {3, 7, 13, 17, 23, 27, 33, 37, 43, 47, 53}
    for step in sorted({10, 20, 30, 40, 50, 57} | timer):
        reason = save_reason(step, 10, final=False, signal=step == 57, timer=step in timer)
        assert reason == ("grid" if step % 10 == 0 else "signal" if step == 57 else "timer")
        save_checkpoint(_state(step, reason=reason), tmp_path, keep_last=3)
        kept = [s for s, _ in list_checkpoints(tmp_path)]
        grid = [s for s, _ in grid_checkpoints(tmp_path)]
        assert grid == [g for g in (10, 20, 30, 40, 50) if g <= step][-3:]
        assert kept == grid + ([step] if reason != "grid" else [])
    assert [s for s, _ in list_checkpoints(tmp_path)] == [30, 40, 50, 57]
    assert [checkpoint_reason(p) for _, p in list_checkpoints(tmp_path)] == [
        "grid",
        "grid",
        "grid",
        "signal",
    ]


def test_save_reason_and_unknown_reasons():
    assert save_reason(20, 10, final=True, signal=True, timer=True) == "grid"  # the grid wins
    assert save_reason(25, 10, final=True, signal=True, timer=True) == "final"
    assert save_reason(25, 10, final=False, signal=True, timer=True) == "signal"
    assert save_reason(25, 10, final=False, signal=False, timer=True) == "timer"
    with pytest.raises(ValueError, match="no reason"):
        save_reason(25, 10, final=False, signal=False, timer=False)


def test_reason_is_recorded_and_old_checkpoints_count_as_grid(tmp_path):
    with pytest.raises(ValueError, match="reason 'lunch'"):
        save_checkpoint(_state(3, reason="lunch"), tmp_path, keep_last=3)
    old = _state(4)
    del old["reason"]
    with pytest.raises(ValueError, match="lacks keys"):
        save_checkpoint(old, tmp_path, keep_last=3)
    torch.save(old, tmp_path / "checkpoint_00000004.pt")  # written before the key existed
    assert checkpoint_reason(tmp_path / "checkpoint_00000004.pt") == "grid"
    assert load_checkpoint(tmp_path / "checkpoint_00000004.pt")["step"] == 4  # still resumable
    (tmp_path / "checkpoint_00000005.pt").write_bytes(b"PK\x03\x04 truncated")
    assert checkpoint_reason(tmp_path / "checkpoint_00000005.pt") is None


def test_save_is_atomic_and_leftovers_are_cleaned(tmp_path, monkeypatch):
    save_checkpoint(_state(1), tmp_path, keep_last=3)
    bad = _state(2)
    bad["rng"][0]["numpy"]["keys"] = np.zeros(3)  # weights-only loading would refuse it
    with pytest.raises(TypeError, match=r"state\['rng'\]\[0\]\['numpy'\]\['keys'\] is a ndarray"):
        save_checkpoint(bad, tmp_path, keep_last=3)

    def dies_half_way(obj, f, *a, **k):  # a full disk, as torch reports it
        f.write(b"PK\x03\x04 half a zip")
        try:
            raise OSError(28, "No space left on device")
        except OSError:
            torch_error = RuntimeError("[enforce fail at inline_container.cc:672] unexpected pos")
            raise torch_error  # noqa: B904 (torch keeps the OSError as the context)

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(OutputError, match=r"checkpoint_00000002\.pt: No space left on device; "):
        save_checkpoint(_state(2), tmp_path, keep_last=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_00000001.pt"]
    # A save killed by SIGKILL leaves its temporary file: the next resume removes it.
    monkeypatch.undo()
    (tmp_path / ".checkpoint_00000002.pt.x1y2.tmp").write_bytes(b"partial")
    r = find_resume(tmp_path, "f" * 64)
    assert r.state["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_00000001.pt"]


def test_find_resume_choices(tmp_path):
    assert find_resume(tmp_path / "missing", "a").state is None
    for step in (2, 4):
        save_checkpoint(_state(step, fp="a" * 64), tmp_path, keep_last=5)
    assert find_resume(tmp_path, "a" * 64, delete=False).state["step"] == 4
    # Truncated newest: warn, fall back, delete it.
    newest = tmp_path / "checkpoint_00000004.pt"
    newest.write_bytes(newest.read_bytes()[:100])
    warnings = []
    r = find_resume(tmp_path, "a" * 64, warn=warnings.append)
    assert r.state["step"] == 2 and r.discarded == [newest] and not newest.exists()
    assert "checkpoint_00000004.pt: cannot load checkpoint" in warnings[0]
    # Another fingerprint: fresh start, every checkpoint deleted.
    warnings.clear()
    r = find_resume(tmp_path, "b" * 64, warn=warnings.append)
    assert r.state is None and list_checkpoints(tmp_path) == []
    assert "aaaaaaaaaaaa, now bbbbbbbbbbbb" in warnings[0]


def test_newer_format_is_an_error_not_deleted(tmp_path):
    s = _state(3)
    s["format"] = FORMAT + 1
    path = save_checkpoint(s, tmp_path, keep_last=2)
    with pytest.raises(CheckpointError, match="format 2 is newer"):
        find_resume(tmp_path, "f" * 64)
    assert path.exists()
    torch.save({"step": 1}, tmp_path / "checkpoint_00000009.pt")
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        load_checkpoint(tmp_path / "checkpoint_00000009.pt")


def test_fingerprint_covers_results_not_bookkeeping(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "index.json").write_text('{"checksum": "1"}')
    tok = tmp_path / "tokenizer.json"
    tok.write_text("{}")
    p = tiny_params()

    def fp(params=p, world_size=1):
        return training_fingerprint(params, shards, tok, world_size)[0]

    def with_train(**kw):
        return dataclasses.replace(p, train=dataclasses.replace(p.train, **kw))

    base = fp()
    same = dict(
        max_steps=99,
        save_every=7,
        save_every_minutes=3.0,
        keep_last=9,
        log_every=5,
        eval_every=0,
        threads=2,
        device="auto",
        compile=True,
        nproc=4,
    )
    for key, value in same.items():
        assert fp(with_train(**{key: value})) == base, key
    for key, value in dict(
        seed=9,
        lr_scale=0.5,
        warmup_steps=9,
        tokens_per_step=999,
        max_tokens=99,
        label_smoothing=0.2,
        precision="bf16",
        clip_norm=1.0,
    ).items():
        assert fp(with_train(**{key: value})) != base, key
    assert fp(dataclasses.replace(p, model=dataclasses.replace(p.model, dropout=0.3))) != base
    assert fp(world_size=2) != base
    # Other sections (translate, average, ...) do not matter.
    assert fp(dataclasses.replace(p, average=dataclasses.replace(p.average, last=2))) == base
    (shards / "index.json").write_text('{"checksum": "2"}')
    assert fp() != base
    (shards / "index.json").write_text('{"checksum": "1"}')
    tok.write_text("{ }")
    assert fp() != base


def test_tokenizer_path_resolves_in_the_models_own_project_first(tmp_path, monkeypatch):
    from aiayn.checkpoint import resolve_tokenizer_path

    ref = "data/tokenizer/tokenizer.json"
    for project in ("here", "there"):
        (tmp_path / project / "data" / "tokenizer").mkdir(parents=True)
        (tmp_path / project / ref).write_text(project, encoding="utf-8")
    (tmp_path / "there" / "data" / "model").mkdir()
    (tmp_path / "loose" / "model").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "here")
    # A model of another project finds that project's tokenizer, not the working folder's.
    got = resolve_tokenizer_path(ref, tmp_path / "there" / "data" / "model")
    assert got.read_text(encoding="utf-8") == "there"
    # Inside the working folder's own project (relative model folder): its tokenizer.
    assert resolve_tokenizer_path(ref, Path("data/model")).read_text(encoding="utf-8") == "here"
    # A model folder with no tokenizer above it: relative to the working folder.
    assert resolve_tokenizer_path(ref, tmp_path / "loose" / "model") == Path(ref)
    assert resolve_tokenizer_path(str(tmp_path / "there" / ref), Path("x")).is_absolute()
