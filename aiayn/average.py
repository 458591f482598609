"""Checkpoint averaging (section 6.1): the mean of the parameters of the last N checkpoints.

The paper averages the last 5 (base) or 20 (big) checkpoints, written at 10-minute
intervals. Here "last" means the highest training steps among
``checkpoint_<step:08d>.pt`` files. A run that has fewer than ``average.last`` checkpoints
(a short run) still works: all of them are averaged, with a warning.

Every checkpoint is loaded with ``torch.load(weights_only=True)``; a file that needs
unpickling of arbitrary objects is refused, never unpickled. Averaging accumulates in float32.
The result, ``model.pt`` (a weights-only float32 state dict) and ``model.json`` (model
config, vocabulary size, tokenizer path and sha256, averaged steps), is written atomically.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

from aiayn.config import AverageConfig
from aiayn.errors import DataError, MissingInputError

CHECKPOINT_RE = re.compile(r"^checkpoint_(\d{8,})\.pt$")


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every ``checkpoint_<step:08d>.pt`` in ``folder``, by step."""
    found = []
    for p in Path(folder).iterdir():
        m = CHECKPOINT_RE.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def load_checkpoint(path: Path) -> dict:
    """A checkpoint loaded weights-only on the CPU, with its keys checked.

    Raises :class:`DataError` naming the file if it cannot be loaded weights-only (e.g. it
    pickles arbitrary objects) or lacks ``model`` (a state dict of tensors), ``step``,
    ``model_config`` or ``vocab_size``.
    """
    import torch

    try:
        ckpt = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as e:  # UnpicklingError, RuntimeError, EOFError, zip errors ...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DataError(
            f"{path}: refused: cannot be loaded weights-only (not unpickled): {first}"
        ) from None
    if not isinstance(ckpt, dict):
        raise DataError(f"{path}: not a checkpoint (expected a dict, got {type(ckpt).__name__})")
    for key, types in (("model", dict), ("step", int), ("model_config", dict), ("vocab_size", int)):
        if not isinstance(ckpt.get(key), types):
            raise DataError(f"{path}: checkpoint key {key!r} missing or not a {types.__name__}")
    for name, t in ckpt["model"].items():
        if not isinstance(t, torch.Tensor):
            raise DataError(f"{path}: model entry {name!r} is not a tensor")
    return ckpt


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
        ckpt = load_checkpoint(path)
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


def _tokenizer_ref(tokenizer: Path) -> str:
    """The tokenizer path as stored in model.json: relative to the working folder if inside."""
    try:
        return Path(tokenizer).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(Path(tokenizer).resolve())


def average_checkpoints(cfg: AverageConfig, checkpoints: Path, tokenizer: Path, out: Path) -> dict:
    """Average the last ``cfg.last`` checkpoints of ``checkpoints`` into ``out``.

    Writes ``out/model.pt`` (weights-only float32 state dict) and ``out/model.json``
    (``model_config``, ``vocab_size``, ``tokenizer``, ``tokenizer_sha256``, ``steps``) and
    returns the model.json dict. Fewer checkpoints than ``cfg.last``: all are averaged, with
    a warning. No checkpoint: :class:`MissingInputError`.
    """
    import torch

    from aiayn.fsio import atomic_dir, require_inputs, sha256_file

    require_inputs(checkpoints, stage="train")
    require_inputs(tokenizer, stage="tokenize")
    found = list_checkpoints(checkpoints)
    if not found:
        raise MissingInputError(
            f"{checkpoints}: no checkpoint_<step>.pt files (run `dvc repro train` first)"
        )
    chosen = found[-cfg.last :]
    if len(chosen) < cfg.last:
        warnings.warn(
            f"{checkpoints} holds {len(found)} checkpoint(s), fewer than average.last="
            f"{cfg.last}; averaging all of them",
            stacklevel=2,
        )
    avg, last = average_state_dicts(chosen)
    meta = {
        "model_config": last["model_config"],
        "vocab_size": last["vocab_size"],
        "tokenizer": _tokenizer_ref(tokenizer),
        "tokenizer_sha256": sha256_file(tokenizer),
        "steps": [s for s, _ in chosen],
    }
    with atomic_dir(out) as tmp:
        torch.save(avg, tmp / "model.pt")
        (tmp / "model.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta
