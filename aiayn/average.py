"""Checkpoint averaging (section 6.1): the mean of the parameters of the last N checkpoints.

The paper averages the last 5 (base) or 20 (big) checkpoints, written at 10-minute
intervals. Here they are the checkpoints on the ``train.save_every`` step grid (their
``reason`` is ``"grid"``, see :mod:`aiayn.checkpoint`), the last ``average.last`` of
them by step: evenly spaced whatever the hardware's speed. Checkpoints written on a timer, on
a signal or at an off-grid ``train.max_steps`` are for resuming and are never averaged (a
warning names those newer than the last averaged one). A run that has fewer than
``average.last`` grid checkpoints (a short run) still works: all of them are averaged, with a
warning.

Every checkpoint is loaded by :func:`aiayn.checkpoint.load_checkpoint` (weights-only; a file
that needs unpickling of arbitrary objects is refused, never unpickled). Averaging
accumulates in float32. The result, the model folder of :mod:`aiayn.checkpoint` (``model.pt``,
a weights-only float32 state dict, and ``model.json``: model config, vocabulary size,
tokenizer path and sha256, averaged steps), is written atomically.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from aiayn.checkpoint import (
    REASONS,
    checkpoint_reason,
    list_checkpoints,
    load_checkpoint,
    model_meta,
    save_model,
)
from aiayn.config import AverageConfig
from aiayn.errors import DataError, MissingInputError


def _check_same(ref: dict, ref_path: Path, ckpt: dict, path: Path) -> None:
    """Same parameter names, shapes, model config and vocabulary in both checkpoints.

    ``ref`` holds ``model`` as a name -> shape dict (the first checkpoint, kept small).
    """
    a = ref["model"]  # name -> shape
    b = {k: v.shape for k, v in ckpt["model"].items()}
    for key in a:
        if key not in b:
            raise DataError(f"parameter {key!r} is in {ref_path} but not in {path}")
    for key in b:
        if key not in a:
            raise DataError(f"parameter {key!r} is in {path} but not in {ref_path}")
    for key in a:
        if a[key] != b[key]:
            raise DataError(
                f"parameter {key!r} has shape {tuple(a[key])} in {ref_path} but "
                f"{tuple(b[key])} in {path}"
            )
    if _complete(ref["model_config"]) != _complete(ckpt["model_config"]):
        raise DataError(f"model_config differs between {ref_path} and {path}")
    if ref["vocab_size"] != ckpt["vocab_size"]:
        raise DataError(f"vocab_size differs between {ref_path} and {path}")


def _complete(model_config: dict) -> dict:
    """A checkpoint's model_config with the keys added since it was written at their
    defaults (which behave as before), so that a resumed older run still averages."""
    from aiayn.config import ModelConfig, to_dict

    try:
        return to_dict(ModelConfig(**model_config))
    except TypeError:  # unknown keys: compare as stored
        return model_config


def average_state_dicts(chosen: list[tuple[int, Path]]) -> tuple[dict, dict]:
    """The float32 mean of the ``model`` state dicts of ``(step, path)`` checkpoints.

    Returns ``(mean state dict, {step, model_config, vocab_size} of the last one)``.
    Floating-point tensors are summed in float32 and divided by ``len(chosen)``; other
    tensors (integer buffers) are taken from the last checkpoint. Each file's ``step`` key
    must match the step in its name.
    """
    import torch

    total: dict = {}
    first = first_path = None
    for step, path in chosen:
        ckpt = load_checkpoint(path, resume=False)
        if ckpt["step"] != step:
            raise DataError(
                f"{path}: file name says step {step} but the checkpoint holds step {ckpt['step']}"
            )
        if first is None:
            first_path = path
            first = {
                "model": {k: v.shape for k, v in ckpt["model"].items()},
                "model_config": ckpt["model_config"],
                "vocab_size": ckpt["vocab_size"],
            }
            total = {
                k: (v.to(torch.float32, copy=True) if v.is_floating_point() else v)
                for k, v in ckpt["model"].items()
            }
        else:
            _check_same(first, first_path, ckpt, path)
            for k, v in ckpt["model"].items():
                if v.is_floating_point():
                    total[k] += v.to(torch.float32)
                else:
                    total[k] = v
        last = {k: ckpt[k] for k in ("step", "model_config", "vocab_size")}
        del ckpt  # optimizer state etc.: free before the next load
    n = len(chosen)
    avg = {k: (v / n if v.is_floating_point() else v) for k, v in total.items()}
    return avg, last


def choose_checkpoints(checkpoints: Path, last: int) -> list[tuple[int, Path]]:
    """(step, path) of the last ``last`` checkpoints on the ``train.save_every`` grid.

    Warns when there are fewer, and names the off-grid checkpoints newer than the first one
    chosen (left out); :class:`MissingInputError` without checkpoints, :class:`DataError`
    without a grid checkpoint or for a file that does not load weights-only.
    """
    found = list_checkpoints(checkpoints)
    if not found:
        raise MissingInputError(
            f"{checkpoints}: no checkpoint_<step>.pt files (run `dvc repro train` first)"
        )
    reasons = {p: checkpoint_reason(p) for _, p in found}
    for p, reason in reasons.items():
        if reason is None:
            load_checkpoint(p, resume=False)  # raises the DataError saying why it does not load
            raise DataError(f"{p}: unknown checkpoint reason (not one of {', '.join(REASONS)})")
    grid = [(s, p) for s, p in found if reasons[p] == "grid"]
    if not grid:
        raise DataError(
            f"{checkpoints}: none of its {len(found)} checkpoint(s) is on the train.save_every "
            f"grid (timer, signal and off-grid max_steps checkpoints are for resuming only); "
            f"train to a multiple of train.save_every"
        )
    chosen = grid[-last:]
    if len(chosen) < last:
        warnings.warn(
            f"{checkpoints} holds {len(grid)} checkpoint(s) on the train.save_every grid, fewer "
            f"than average.last={last}; averaging all of them",
            stacklevel=3,
        )
    left_out = [
        f"{p.name} ({reasons[p]})" for s, p in found if s > chosen[0][0] and reasons[p] != "grid"
    ]
    if left_out:
        warnings.warn(
            f"not averaged, off the train.save_every grid: {', '.join(left_out)}", stacklevel=3
        )
    return chosen


def average_checkpoints(cfg: AverageConfig, checkpoints: Path, tokenizer: Path, out: Path) -> dict:
    """Average the last ``cfg.last`` checkpoints of ``checkpoints`` into ``out``.

    Writes ``out/model.pt`` (weights-only float32 state dict) and ``out/model.json``
    (``model_config``, ``vocab_size``, ``tokenizer``, ``tokenizer_sha256``, ``steps``) and
    returns the model.json dict. Only checkpoints on the ``train.save_every`` grid are
    averaged (:func:`choose_checkpoints`); fewer than ``cfg.last``: all of those, with a
    warning. No checkpoint: :class:`MissingInputError`.
    """
    from aiayn.fsio import require_inputs

    require_inputs(checkpoints, stage="train")
    require_inputs(tokenizer, stage="tokenize")
    chosen = choose_checkpoints(checkpoints, cfg.last)
    avg, last = average_state_dicts(chosen)
    meta = model_meta(last["model_config"], last["vocab_size"], tokenizer, [s for s, _ in chosen])
    save_model(out, avg, meta)
    return meta
