"""Checkpoint averaging: exact means, refused mismatches and pickles, atomic outputs."""

from __future__ import annotations

import json
import os

import pytest
import torch

from aiayn.average import average_checkpoints
from aiayn.checkpoint import list_checkpoints
from aiayn.config import AverageConfig
from aiayn.errors import DataError, MissingInputError
from aiayn.fsio import sha256_file

MODEL_CONFIG = {"d_model": 8, "n_heads": 2}  # a valid section (model.d_model >= 8)


def state(seed: int, shapes=None) -> dict:
    g = torch.Generator().manual_seed(seed)
    shapes = shapes or {"embed.weight": (5, 4), "layer.bias": (4,)}
    return {k: torch.randn(s, generator=g) for k, s in shapes.items()}


def save_ckpt(folder, step: int, model: dict, **extra) -> os.PathLike:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"checkpoint_{step:08d}.pt"
    ckpt = {
        "model": model,
        "step": step,
        "model_config": MODEL_CONFIG,
        "vocab_size": 5,
        "optimizer": {"state": {}},
        "format": 1,
    }
    ckpt.update(extra)
    torch.save(ckpt, path)
    return path


@pytest.fixture
def tok(tmp_path):
    p = tmp_path / "tokenizer.json"
    p.write_text('{"fake": "tokenizer"}')
    return p


def test_two_checkpoints_average_to_their_mean(tmp_path, tok):
    a, b = state(1), state(2)
    save_ckpt(tmp_path / "ck", 100, a)
    save_ckpt(tmp_path / "ck", 200, b)
    meta = average_checkpoints(AverageConfig(last=2), tmp_path / "ck", tok, tmp_path / "model")
    avg = torch.load(tmp_path / "model" / "model.pt", weights_only=True)
    assert set(avg) == set(a)
    for k in a:
        assert avg[k].dtype == torch.float32
        assert torch.equal(avg[k], (a[k] + b[k]) / 2)
    on_disk = json.loads((tmp_path / "model" / "model.json").read_text())
    assert on_disk == meta
    assert meta["steps"] == [100, 200]
    assert meta["model_config"] == MODEL_CONFIG and meta["vocab_size"] == 5
    assert meta["tokenizer_sha256"] == sha256_file(tok)


def test_picks_the_last_by_step_and_accumulates_in_float32(tmp_path, tok):
    ck = tmp_path / "ck"
    # Step 1000 sorts after step 900 numerically (and by the zero-padded name).
    for step, value in ((50, 100.0), (900, 1.0), (1000, 2.0), (800, 3.0)):
        save_ckpt(ck, step, {"w": torch.full((3,), value, dtype=torch.bfloat16)})
    meta = average_checkpoints(AverageConfig(last=3), ck, tok, tmp_path / "model")
    assert meta["steps"] == [800, 900, 1000]
    avg = torch.load(tmp_path / "model" / "model.pt", weights_only=True)
    assert avg["w"].dtype == torch.float32
    assert torch.equal(avg["w"], torch.full((3,), 2.0))


def test_fewer_checkpoints_than_last_warns_and_averages_all(tmp_path, tok):
    ck = tmp_path / "ck"
    save_ckpt(ck, 10, {"w": torch.tensor([1.0])})
    save_ckpt(ck, 20, {"w": torch.tensor([4.0])})
    with pytest.warns(UserWarning, match="fewer than average.last=5; averaging all"):
        meta = average_checkpoints(AverageConfig(last=5), ck, tok, tmp_path / "model")
    assert meta["steps"] == [10, 20]
    assert torch.load(tmp_path / "model" / "model.pt")["w"].item() == 2.5


def test_mismatched_keys_refused_naming_key_and_files(tmp_path, tok):
    ck = tmp_path / "ck"
    p1 = save_ckpt(ck, 1, {"a": torch.zeros(2), "b": torch.zeros(2)})
    p2 = save_ckpt(ck, 2, {"a": torch.zeros(2), "c": torch.zeros(2)})
    with pytest.raises(DataError) as e:
        average_checkpoints(AverageConfig(last=2), ck, tok, tmp_path / "model")
    msg = str(e.value)
    assert "'b'" in msg and str(p1) in msg and str(p2) in msg
    assert not (tmp_path / "model").exists()


def test_mismatched_shapes_refused_naming_key_and_files(tmp_path, tok):
    ck = tmp_path / "ck"
    p1 = save_ckpt(ck, 1, {"a": torch.zeros(2, 3)})
    p2 = save_ckpt(ck, 2, {"a": torch.zeros(3, 2)})
    with pytest.raises(DataError) as e:
        average_checkpoints(AverageConfig(last=2), ck, tok, tmp_path / "model")
    msg = str(e.value)
    assert "'a'" in msg and "(2, 3)" in msg and "(3, 2)" in msg
    assert str(p1) in msg and str(p2) in msg


def test_pickle_only_file_is_refused_never_unpickled(tmp_path, tok):
    ck = tmp_path / "ck"
    save_ckpt(ck, 1, {"w": torch.zeros(1)})
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    bad = save_ckpt(ck, 2, {"w": torch.zeros(1)}, extra=Evil())
    with pytest.raises(DataError, match=f"{bad}: refused to load this checkpoint"):
        average_checkpoints(AverageConfig(last=2), ck, tok, tmp_path / "model")
    assert not marker.exists()
    assert not (tmp_path / "model").exists()


def test_step_in_name_must_match_step_key(tmp_path, tok):
    ck = tmp_path / "ck"
    path = save_ckpt(ck, 7, {"w": torch.zeros(1)})
    os.rename(path, ck / "checkpoint_00000009.pt")
    with pytest.raises(DataError, match="file name says step 9 but the checkpoint holds step 7"):
        average_checkpoints(AverageConfig(last=1), ck, tok, tmp_path / "model")


def test_no_checkpoints_and_missing_inputs(tmp_path, tok):
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "notes.txt").write_text("x")
    with pytest.raises(MissingInputError, match="no checkpoint_<step>.pt"):
        average_checkpoints(AverageConfig(), tmp_path / "ck", tok, tmp_path / "model")
    with pytest.raises(MissingInputError, match="dvc repro train"):
        average_checkpoints(AverageConfig(), tmp_path / "nope", tok, tmp_path / "model")
    assert list_checkpoints(tmp_path / "ck") == []


def test_existing_output_replaced_only_on_success(tmp_path, tok):
    ck = tmp_path / "ck"
    out = tmp_path / "model"
    save_ckpt(ck, 1, {"w": torch.ones(1)})
    average_checkpoints(AverageConfig(last=1), ck, tok, out)
    before = (out / "model.pt").read_bytes()
    save_ckpt(ck, 2, {"w": torch.ones(2)})  # shape mismatch: the rerun fails
    with pytest.raises(DataError):
        average_checkpoints(AverageConfig(last=2), ck, tok, out)
    assert (out / "model.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck", "model", "tokenizer.json"]


def test_only_checkpoints_on_the_save_every_grid_are_averaged(tmp_path, tok):
    # save_every 100: timer checkpoints (their steps depend on the machine's speed), a
    # signal one and an off-grid final one are for resuming, never averaged.
    ck = tmp_path / "ck"
    for step, reason in ((100, "grid"), (150, "timer"), (200, "grid"), (250, "timer")):
        save_ckpt(ck, step, {"w": torch.tensor([float(step)])}, reason=reason)
    save_ckpt(ck, 300, {"w": torch.tensor([300.0])})  # older format: no reason, counts as grid
    save_ckpt(ck, 333, {"w": torch.tensor([333.0])}, reason="signal")
    save_ckpt(ck, 345, {"w": torch.tensor([345.0])}, reason="final")
    with pytest.warns(UserWarning) as seen:
        meta = average_checkpoints(AverageConfig(last=2), ck, tok, tmp_path / "model")
    assert meta["steps"] == [200, 300]
    assert torch.load(tmp_path / "model" / "model.pt")["w"].item() == 250.0
    (msg,) = [str(w.message) for w in seen]
    assert msg == (
        "not averaged, off the train.save_every grid: checkpoint_00000250.pt (timer), "
        "checkpoint_00000333.pt (signal), checkpoint_00000345.pt (final)"
    )
    with pytest.warns(UserWarning) as seen:
        meta = average_checkpoints(AverageConfig(last=5), ck, tok, tmp_path / "model")
    assert meta["steps"] == [100, 200, 300]
    assert "holds 3 checkpoint(s) on the train.save_every grid, fewer than average.last=5" in str(
        seen[0].message
    )
    assert "checkpoint_00000150.pt (timer)" in str(seen[1].message)


def test_no_grid_checkpoint_is_an_error(tmp_path, tok):
    ck = tmp_path / "ck"
    save_ckpt(ck, 7, {"w": torch.zeros(1)}, reason="timer")
    save_ckpt(ck, 9, {"w": torch.zeros(1)}, reason="final")
    with pytest.raises(DataError, match="none of its 2 checkpoint.s. is on the train.save_every"):
        average_checkpoints(AverageConfig(last=1), ck, tok, tmp_path / "model")
    assert not (tmp_path / "model").exists()


def test_a_newer_checkpoint_format_is_refused(tmp_path, tok):
    # One loader for resuming and averaging (aiayn.checkpoint): both refuse a format they
    # do not read, instead of averaging keys they may misread.
    ck = tmp_path / "ck"
    path = save_ckpt(ck, 1, {"w": torch.zeros(1)}, format=2)
    with pytest.raises(DataError, match=f"{path}: checkpoint format 2 is newer"):
        average_checkpoints(AverageConfig(last=1), ck, tok, tmp_path / "model")


def test_the_model_folder_reads_back_what_averaging_wrote(tmp_path, tok, monkeypatch):
    from aiayn.checkpoint import load_model_weights, read_model_meta, save_model

    monkeypatch.chdir(tmp_path)  # the tokenizer path is stored relative to the project root
    ck, out = tmp_path / "ck", tmp_path / "data" / "model"
    save_ckpt(ck, 3, {"w": torch.tensor([2.0])})
    average_checkpoints(AverageConfig(last=1), ck, tok, out)
    assert json.loads((out / "model.json").read_text())["tokenizer"] == "tokenizer.json"
    monkeypatch.chdir(out.parent)  # elsewhere: found in the folders above the model folder
    meta = read_model_meta(out)
    assert (meta.vocab_size, meta.tokenizer, meta.tokenizer_sha256) == (5, tok, sha256_file(tok))
    assert (meta.config.d_model, meta.config.n_heads) == (8, 2)
    weights = load_model_weights(out)
    assert list(weights) == ["w"] and torch.equal(weights["w"], torch.tensor([2.0]))
    # torch.compile and DDP prefixes are dropped on reading
    save_model(out, {"_orig_mod.module.w": torch.tensor([1.0])}, json.loads(meta.path.read_text()))
    assert list(load_model_weights(out)) == ["w"]
