"""Safe resume: bitwise-identical continuation, corrupt-checkpoint fallback, fingerprints
(a params change after a DVC ``persist`` output must start fresh, never resume or skip),
continuous dvclive curves, and nothing to do at ``max_steps``."""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from train_support import make_shards, tiny_params

from aiayn.checkpoint import checkpoint_reason, list_checkpoints, load_checkpoint
from aiayn.train.trainer import run_training


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_shards(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def straight(data, tmp_path_factory):
    """An uninterrupted 6-step run: (checkpoint dir, live dir)."""
    root = tmp_path_factory.mktemp("straight")
    run_training(tiny_params(max_steps=6), *data, root / "ckpt", root / "live")
    return root / "ckpt", root / "live"


def _final(ckpt: Path) -> dict:
    step, path = list_checkpoints(ckpt)[-1]
    return load_checkpoint(path)


def _assert_same_tensors(a, b, where=""):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype, where
        assert torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same_tensors(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _steps(live: Path, name: str) -> list[int]:
    with open(live / "plots" / "metrics" / f"{name}.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [int(r["step"]) for r in rows]


def _train_metrics(live: Path) -> dict:
    return json.loads((live / "metrics.json").read_text())["train"]


def test_tokens_and_flops_metrics(data, straight):
    from aiayn.dataset import ShardDataset
    from aiayn.model_info import train_flops
    from aiayn.train.trainer import model_flops_per_token

    final, metrics = _final(straight[0]), _train_metrics(straight[1])
    assert metrics["tokens"] == final["tokens"] > 0
    ds = ShardDataset(data[0], "train")
    per_token = model_flops_per_token(tiny_params().model, ds.vocab_size, ds)
    assert metrics["flops"] == pytest.approx(final["tokens"] * per_token, rel=1e-12)
    # per target token: the model-info count at the data's mean lengths and source/target ratio
    src, tgt, n = ds.src_lens.sum(), ds.tgt_lens.sum(), len(ds)
    assert per_token == train_flops(
        tiny_params().model, ds.vocab_size, src / tgt, 1, src / n, tgt / n
    )


def test_stop_and_resume_is_bitwise_identical(data, straight, tmp_path):
    ckpt, live = tmp_path / "ckpt", tmp_path / "live"
    run_training(tiny_params(max_steps=3), *data, ckpt, live)
    assert [s for s, _ in list_checkpoints(ckpt)] == [2, 3]
    assert [checkpoint_reason(p) for _, p in list_checkpoints(ckpt)] == ["grid", "final"]
    # Raising max_steps (not part of the fingerprint) continues from step 3.
    run_training(tiny_params(max_steps=6), *data, ckpt, live)
    a, b = _final(straight[0]), _final(ckpt)
    assert a["step"] == b["step"] == 6
    for key in ("model", "optimizer", "sampler", "rng", "tokens", "fingerprint"):
        _assert_same_tensors(a[key], b[key], key)
    # The curves are continuous: every step exactly once, as in the straight run.
    for name in ("train/loss", "train/lr", "train/tokens_per_s"):
        assert _steps(live, name) == list(range(1, 7)) == _steps(straight[1], name)
    assert _steps(live, "dev/loss") == [3, 6]
    # Tokens seen and training FLOPs (Table 2's cost) count the whole run across the resume.
    assert _train_metrics(live)["tokens"] == _train_metrics(straight[1])["tokens"] == b["tokens"]
    with (
        open(live / "plots" / "metrics" / "train" / "loss.tsv") as f1,
        open(straight[1] / "plots" / "metrics" / "train" / "loss.tsv") as f2,
    ):
        vals = lambda f: [r["loss"] for r in csv.DictReader(f, delimiter="\t")]  # noqa: E731
        assert vals(f1) == vals(f2)


def test_corrupt_newest_checkpoint_falls_back_and_curves_drop_lost_steps(
    data, straight, tmp_path, capsys
):
    ckpt, live = tmp_path / "ckpt", tmp_path / "live"
    run_training(tiny_params(max_steps=5, save_every=2), *data, ckpt, live)
    assert [s for s, _ in list_checkpoints(ckpt)] == [2, 4, 5]
    newest = list_checkpoints(ckpt)[-1][1]
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated, e.g. a full disk
    capsys.readouterr()
    run_training(tiny_params(max_steps=6), *data, ckpt, live)
    err = capsys.readouterr().err
    assert "checkpoint_00000005.pt: cannot load checkpoint" in err
    assert "falling back" in err
    # Resumed from step 4: step 5 was trained again, its old rows were dropped.
    assert _steps(live, "train/loss") == list(range(1, 7))
    _assert_same_tensors(_final(straight[0])["model"], _final(ckpt)["model"], "model")


def test_changed_params_start_fresh_instead_of_resuming(data, tmp_path, capsys):
    # What DVC does with `persist: true` outputs: the folder survives a params change.
    ckpt, live = tmp_path / "ckpt", tmp_path / "live"
    run_training(tiny_params(max_steps=4), *data, ckpt, live)
    old = _final(ckpt)
    capsys.readouterr()
    changed = tiny_params(max_steps=4, lr_scale=0.5)
    run_training(changed, *data, ckpt, live)
    out = capsys.readouterr()
    assert "starting fresh" in out.out
    assert "deleting 2 stale checkpoint(s)" in out.err  # keep_last 3: steps 2, 4 (save_every 2)
    new = _final(ckpt)
    assert new["step"] == 4 and new["fingerprint"] != old["fingerprint"]
    assert new["fingerprint_inputs"]["train"]["lr_scale"] == 0.5
    assert not torch.equal(new["model"]["embed.weight"], old["model"]["embed.weight"])
    # Every file in the folder is from the new run; the curves restarted at step 1.
    assert {load_checkpoint(p)["fingerprint"] for _, p in list_checkpoints(ckpt)} == {
        new["fingerprint"]
    }
    assert _steps(live, "train/loss") == [1, 2, 3, 4]
    # And it equals a run that never saw the old checkpoints.
    fresh = tmp_path / "fresh"
    run_training(changed, *data, fresh / "ckpt", fresh / "live")
    assert torch.equal(
        _final(fresh / "ckpt")["model"]["embed.weight"], new["model"]["embed.weight"]
    )


def test_changed_data_starts_fresh(data, tmp_path, capsys):
    shards, tok = data
    ckpt, live = tmp_path / "ckpt", tmp_path / "live"
    run_training(tiny_params(max_steps=2), shards, tok, ckpt, live)
    other = tmp_path / "shards"
    shutil.copytree(shards, other)
    index = other / "index.json"
    index.write_text(index.read_text().replace('"format"', '"extra": 1, "format"', 1))
    capsys.readouterr()
    run_training(tiny_params(max_steps=2), other, tok, ckpt, live)
    assert "starting fresh" in capsys.readouterr().out


def test_rerun_at_max_steps_does_nothing(data, tmp_path, capsys):
    ckpt, live = tmp_path / "ckpt", tmp_path / "live"
    # log_every, save_every, eval_every, keep_last, threads do not change the fingerprint.
    run_training(tiny_params(max_steps=2), *data, ckpt, live)
    before = {p: p.stat().st_mtime_ns for p in [*ckpt.iterdir(), *live.rglob("*")]}
    capsys.readouterr()
    again = tiny_params(max_steps=2, log_every=7, save_every=5, eval_every=0, keep_last=4)
    run_training(again, *data, ckpt, live)
    assert "nothing to train" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in [*ckpt.iterdir(), *live.rglob("*")]} == before
    # Lowering max_steps below the newest checkpoint is not an error either.
    run_training(
        dataclasses.replace(again, train=dataclasses.replace(again.train, max_steps=1)),
        *data,
        ckpt,
        live,
    )
    assert "nothing to train" in capsys.readouterr().out


def test_timer_checkpoints_are_recorded_and_never_crowd_out_the_grid(data, tmp_path, monkeypatch):
    # A timer that is due at every step (a very slow machine), save_every 2, keep_last 2:
    # every checkpoint says why it was written, and rotation keeps the grid ones.
    from aiayn import checkpoint

    written = []
    save = checkpoint.save_checkpoint

    def recording(state, directory, keep_last):
        written.append((state["step"], state["reason"]))
        return save(state, directory, keep_last)

    monkeypatch.setattr("aiayn.train.trainer.save_checkpoint", recording)
    ckpt, live = tmp_path / "ckpt", tmp_path / "live"
    params = tiny_params(max_steps=5, save_every=2, keep_last=2, save_every_minutes=1e-9)
    run_training(params, *data, ckpt, live)
    assert written == [(1, "timer"), (2, "grid"), (3, "timer"), (4, "grid"), (5, "final")]
    found = list_checkpoints(ckpt)
    assert [s for s, _ in found] == [2, 4, 5]
    assert [checkpoint_reason(p) for _, p in found] == ["grid", "grid", "final"]
    longer = dataclasses.replace(params.train, max_steps=8)
    run_training(dataclasses.replace(params, train=longer), *data, ckpt, live)
    assert written[5:] == [(6, "grid"), (7, "timer"), (8, "grid")]
    assert [s for s, _ in list_checkpoints(ckpt)] == [6, 8]  # 5 and 7 were for resuming
