"""Model files: training checkpoints and the averaged model folder (train, average, translate).

Checkpoints: atomic save, rotation, safe resume, fingerprints and RNG states; the single
loader (:func:`load_checkpoint`) for resuming and for averaging. The model folder
(``model.pt`` + ``model.json``, :func:`save_model`, :func:`read_model_meta`,
:func:`load_model_weights`) is what averaging writes and decoding reads.

A checkpoint is ``<dir>/checkpoint_<step:08d>.pt``, written with ``torch.save`` to a
temporary sibling, flushed to disk and renamed into place, so a crash never leaves a
truncated file under the final name. Every file loads with ``torch.load(weights_only=True)``:
it holds only tensors, numbers, strings, ``None``, lists and dicts (NumPy and Python RNG
states are converted). Keys (format 1):

=================  =====================================================================
``format``         int, :data:`FORMAT`
``step``           optimizer steps done
``model``          the model's state dict (unwrapped from DDP / ``torch.compile``)
``model_config``   dict of :class:`aiayn.config.ModelConfig`
``vocab_size``     int
``fingerprint``    sha256 hex of what the run's results depend on (:func:`training_fingerprint`)
``fingerprint_inputs``  the dict that was hashed (for humans: what changed?)
``optimizer``      Adam state dict
``scaler``         GradScaler state dict (``{}`` unless fp16)
``rng``            list, one entry per rank: :func:`capture_rng` dicts
``sampler``        list, one entry per rank: the batch sampler's state (data loader position)
``world_size``     int
``precision``      "fp32" / "fp16" / "bf16"
``tokens``         target tokens trained on so far (all ranks)
``train_seconds``  wall-clock training time so far
``rank_checksums`` list, one sha256 per rank of the weights (DDP ranks must agree)
``reason``         why it was written (:data:`REASONS`); absent in checkpoints written
                   before this key existed, which count as ``"grid"``
=================  =====================================================================

Why a checkpoint was written decides what it is for. ``"grid"``: the step is a multiple of
``train.save_every``; only these are averaged (section 6.1's evenly spaced checkpoints, on
any hardware). ``"final"`` (``train.max_steps`` off the grid), ``"timer"``
(``train.save_every_minutes``) and ``"signal"`` (SIGTERM, Ctrl-C) are for resuming only: a
timer checkpoint's step depends on the machine's speed. A step on the grid is ``"grid"``
whatever else also asked for it.

Rotation (:func:`rotate`) keeps the newest ``keep_last`` grid checkpoints and, when the
newest checkpoint is off the grid, that one too (for resuming); older off-grid checkpoints
are deleted, so timer and signal checkpoints never push grid checkpoints out.

Resume (:func:`find_resume`): the newest checkpoint that loads is used when its fingerprint
matches; a newest file that does not load (truncated, corrupt) is deleted with a warning and
the previous one is tried. When the newest loadable checkpoint has a *different* fingerprint,
the run starts fresh and every checkpoint in the folder is **deleted** (with a warning naming
the old and new fingerprint): they belong to another configuration and would otherwise be
averaged by the next stage. The previous completed run's checkpoints stay in the DVC cache.

The model folder: ``model.pt``, a weights-only state dict; ``model.json``, ``{"model_config":
{...}, "vocab_size": int, "tokenizer": path, "tokenizer_sha256": str, "steps": [int]}``
(:data:`MODEL_META_KEYS`), the tokenizer path relative to the working folder when inside it
and resolved from the working folder or the folders above the model folder when read.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aiayn.config import ModelConfig, Params, fingerprint, to_dict
from aiayn.errors import DataError, MissingInputError
from aiayn.fsio import atomic_dir, atomic_file, load_weights_only, sha256_file

FORMAT = 1
REQUIRED_KEYS = (
    "format",
    "step",
    "model",
    "model_config",
    "vocab_size",
    "fingerprint",
    "optimizer",
    "scaler",
    "rng",
    "sampler",
)
# What every use of a checkpoint (resume, averaging) needs, with its type.
WEIGHT_KEYS = (("model", dict), ("step", int), ("model_config", dict), ("vocab_size", int))
# Why a checkpoint was written ("reason" key); only "grid" checkpoints are averaged.
REASONS = ("grid", "final", "timer", "signal")
_NAME = re.compile(r"^checkpoint_(\d{8,})\.pt$")
_TEMP = re.compile(r"^\.checkpoint_\d{8,}\.pt\..*\.tmp$")

# train.* keys that do not change the trained weights: changing them resumes, never restarts.
# (nproc is replaced by the real world size, which does change the batches.)
NON_RESULT_TRAIN_KEYS = (
    "max_steps",
    "save_every",
    "save_every_minutes",
    "keep_last",
    "log_every",
    "eval_every",
    "threads",
    "device",
    "compile",
    "nproc",
)


# model.* keys added after runs had been trained, with the value that behaves as before:
# left out of the fingerprint at that value, so that those runs still resume.
LATER_MODEL_KEYS = {"d_k": 0, "d_v": 0, "positional": "sinusoidal"}


class CheckpointError(DataError):
    """A checkpoint file that cannot be used (corrupt, truncated, wrong format)."""


def _warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- fingerprint


def training_fingerprint(
    params: Params, shards: Path, tokenizer: Path, world_size: int
) -> tuple[str, dict]:
    """sha256 of everything the trained weights depend on, and the dict that was hashed.

    The ``model`` section (minus :data:`LATER_MODEL_KEYS` at their defaults), the ``train``
    section minus :data:`NON_RESULT_TRAIN_KEYS`, the number of data-parallel processes, the
    sha256 of the shards' ``index.json`` (counts, checksums, vocabulary) and the sha256 of
    the tokenizer file.
    """
    train = {k: v for k, v in to_dict(params.train).items() if k not in NON_RESULT_TRAIN_KEYS}
    model = {
        k: v
        for k, v in to_dict(params.model).items()
        if not (k in LATER_MODEL_KEYS and LATER_MODEL_KEYS[k] == v)
    }
    inputs = {
        "model": model,
        "train": train,
        "world_size": world_size,
        "shards_index_sha256": sha256_file(Path(shards) / "index.json"),
        "tokenizer_sha256": sha256_file(tokenizer),
    }
    return fingerprint(inputs), inputs


# ----------------------------------------------------------------------------- files


def checkpoint_path(directory: Path, step: int) -> Path:
    """``<directory>/checkpoint_<step:08d>.pt``"""
    return Path(directory) / f"checkpoint_{step:08d}.pt"


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint file in ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for p in directory.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def remove_temp_files(directory: Path) -> int:
    """Delete temporary files left by a save that was killed (SIGKILL, power loss)."""
    directory = Path(directory)
    n = 0
    if directory.is_dir():
        for p in directory.iterdir():
            if _TEMP.match(p.name):
                p.unlink(missing_ok=True)
                n += 1
    return n


def save_reason(step: int, save_every: int, *, final: bool, signal: bool, timer: bool) -> str:
    """The ``reason`` of a checkpoint written at ``step`` (:data:`REASONS`): ``"grid"`` on
    the ``save_every`` grid, else ``"final"``, ``"signal"`` or ``"timer"`` (first that holds)."""
    if step % save_every == 0:
        return "grid"
    if final:
        return "final"
    if signal:
        return "signal"
    if timer:
        return "timer"
    raise ValueError(f"no reason to write a checkpoint at step {step}")


def checkpoint_reason(path: Path) -> str | None:
    """The ``reason`` stored in a checkpoint file, read without loading its tensors (mmap);
    ``"grid"`` for a checkpoint written before the key existed, None if it does not load."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # truncated or corrupt: resume decides what to do with it
        return None
    if not isinstance(state, dict):
        return None
    reason = state.get("reason", "grid")
    return reason if reason in REASONS else None


def grid_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(step, path) of the checkpoints on the ``save_every`` grid, oldest first."""
    return [(s, p) for s, p in list_checkpoints(directory) if checkpoint_reason(p) == "grid"]


def rotate(directory: Path, keep_last: int) -> list[Path]:
    """Keep the newest ``keep_last`` grid checkpoints and the newest checkpoint if it is off
    the grid; delete the others and return their paths (module docstring)."""
    found = [p for _, p in list_checkpoints(directory)]
    grid = [p for p in found if checkpoint_reason(p) == "grid"]
    keep = set(grid[-keep_last:] if keep_last > 0 else []) | set(found[-1:])
    old = [p for p in found if p not in keep]
    for p in old:
        p.unlink(missing_ok=True)
    return old


def save_checkpoint(state: dict, directory: Path, keep_last: int) -> Path:
    """Write ``state`` atomically as ``checkpoint_<state['step']:08d>.pt``, then rotate.

    The file is written to a temporary sibling, fsync'ed and renamed, so the final name
    only ever holds a complete checkpoint.
    """
    missing = [k for k in (*REQUIRED_KEYS, "reason") if k not in state]
    if missing:
        raise ValueError(f"checkpoint state lacks keys {missing}")
    if state["reason"] not in REASONS:
        raise ValueError(f"checkpoint reason {state['reason']!r} is not one of {REASONS}")
    check_weights_only(state)
    path = checkpoint_path(directory, int(state["step"]))
    # Through a Python file object: a full disk is then an OSError (the context of torch's
    # RuntimeError), which atomic_file turns into a one-line error; flushed and fsync'ed.
    with atomic_file(path, "wb") as f:
        torch.save(state, f)
    rotate(directory, keep_last)
    return path


def check_weights_only(obj: Any, where: str = "state") -> None:
    """Raise TypeError naming the first value ``torch.load(weights_only=True)`` would refuse
    (only tensors, numbers, strings, None, and lists/tuples/dicts of them are allowed)."""
    if obj is None or isinstance(obj, bool | int | float | str | torch.Tensor | torch.dtype):
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str | int):
                raise TypeError(f"{where}: key {k!r} is a {type(k).__name__}")
            check_weights_only(v, f"{where}[{k!r}]")
        return
    if isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            check_weights_only(v, f"{where}[{i}]")
        return
    raise TypeError(f"{where} is a {type(obj).__name__}, which weights-only loading refuses")


def load_checkpoint(path: Path, map_location: Any = "cpu", *, resume: bool = True) -> dict:
    """Load and check a checkpoint (``weights_only=True``); raise :class:`CheckpointError`.

    Every use needs :data:`WEIGHT_KEYS` (of those types, ``model`` holding tensors only) and
    a format this code reads. ``resume``: also every key of :data:`REQUIRED_KEYS` (training
    state); False (averaging): a file that does not load says how to rebuild it. A file that
    would need unpickling arbitrary objects is refused, never unpickled.
    """
    state = load_weights_only(
        path,
        what="checkpoint",
        fix="" if resume else "delete it, or rerun `dvc repro train` to rebuild it",
        error=CheckpointError,
        map_location=map_location,
    )
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a checkpoint (a {type(state).__name__})")
    fmt = state.get("format")
    if isinstance(fmt, int) and fmt > FORMAT:
        raise CheckpointError(
            f"{path}: checkpoint format {fmt} is newer than this code reads ({FORMAT})"
        )
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if resume and missing:
        raise CheckpointError(f"{path}: not a training checkpoint (missing {', '.join(missing)})")
    _check_weight_keys(state, path)
    return state


def _check_weight_keys(state: dict, path: Path) -> None:
    """:data:`WEIGHT_KEYS` present with their types, and ``model`` a dict of tensors."""
    for key, typ in WEIGHT_KEYS:
        if not isinstance(state.get(key), typ):
            raise CheckpointError(f"{path}: checkpoint key {key!r} missing or not a {typ.__name__}")
    for name, t in state["model"].items():
        if not isinstance(t, torch.Tensor):
            raise CheckpointError(f"{path}: model entry {name!r} is not a tensor")


@dataclass
class Resume:
    """What :func:`find_resume` decided."""

    state: dict | None  # the checkpoint to resume from, or None: start fresh
    path: Path | None = None
    discarded: list[Path] | None = None  # stale or corrupt files that were deleted


def find_resume(
    directory: Path,
    fp: str,
    *,
    delete: bool = True,
    warn: Callable[[str], None] = _warn,
    map_location: Any = "cpu",
) -> Resume:
    """Pick the checkpoint to resume from in ``directory`` for fingerprint ``fp``.

    Newest first: a file that does not load is deleted (``delete``) with a warning and the
    previous one tried; the first that loads decides: same fingerprint, resume from it;
    different fingerprint, start fresh and delete every checkpoint in the folder. A file of
    a newer format is an error, never deleted.
    """
    directory = Path(directory)
    if delete:
        remove_temp_files(directory)
    discarded: list[Path] = []
    for step, path in reversed(list_checkpoints(directory)):
        try:
            state = load_checkpoint(path, map_location=map_location)
        except CheckpointError as e:
            if "newer than this code" in str(e):
                raise
            warn(f"{e}; falling back to the previous checkpoint")
            if delete:
                path.unlink(missing_ok=True)
            discarded.append(path)
            continue
        if int(state["step"]) != step:
            warn(f"{path}: holds step {state['step']}, not {step}; ignoring it")
            continue
        if state["fingerprint"] == fp:
            return Resume(state, path, discarded)
        stale = [p for _, p in list_checkpoints(directory)]
        warn(
            f"{directory}: checkpoints were trained with other params or data (fingerprint "
            f"{str(state['fingerprint'])[:12]}, now {fp[:12]}); starting fresh and deleting "
            f"{len(stale)} stale checkpoint(s)"
        )
        if delete:
            for p in stale:
                p.unlink(missing_ok=True)
        return Resume(None, None, discarded + stale)
    return Resume(None, None, discarded)


# ----------------------------------------------------------------------------- model folder

MODEL_WEIGHTS = "model.pt"
MODEL_META = "model.json"
# model.json's keys and their types (``steps``, the averaged steps, is for humans).
MODEL_META_KEYS = (
    ("model_config", dict),
    ("vocab_size", int),
    ("tokenizer", str),
    ("tokenizer_sha256", str),
)


@dataclass(frozen=True)
class ModelMeta:
    """A model folder's ``model.json``, checked (:func:`read_model_meta`)."""

    path: Path  # the model.json file
    config: ModelConfig
    vocab_size: int
    tokenizer: Path  # resolved: :func:`resolve_tokenizer_path`
    tokenizer_sha256: str


def model_meta(model_config: dict, vocab_size: int, tokenizer: Path, steps: list[int]) -> dict:
    """``model.json``'s dict for weights built from checkpoints of ``steps``; the tokenizer
    path is stored relative to the working folder (the project root) when inside it."""
    return {
        "model_config": model_config,
        "vocab_size": vocab_size,
        "tokenizer": _tokenizer_ref(tokenizer),
        "tokenizer_sha256": sha256_file(tokenizer),
        "steps": steps,
    }


def _tokenizer_ref(tokenizer: Path) -> str:
    """The tokenizer path as stored in model.json: relative to the working folder if inside."""
    try:
        return Path(tokenizer).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(Path(tokenizer).resolve())


def resolve_tokenizer_path(ref: str, model_dir: Path) -> Path:
    """model.json's tokenizer path: absolute as is; relative to the model's project root,
    i.e. the nearest folder above ``model_dir`` where it exists, else the working folder.

    The model's own project first: a model of another project, read from a working folder
    that has a tokenizer at the same relative path, still finds its own tokenizer."""
    p = Path(ref)
    if p.is_absolute():
        return p
    for parent in Path(model_dir).resolve().parents:
        if (parent / p).exists():
            return parent / p
    return p


def save_model(out: Path, weights: dict, meta: dict) -> None:
    """Write the model folder ``out`` atomically: ``model.pt`` (``weights``, a state dict
    saved weights-only) and ``model.json`` (``meta``, see :func:`model_meta`)."""
    with atomic_dir(out) as tmp:
        with open(tmp / MODEL_WEIGHTS, "wb") as f:  # a full disk: an OSError, see save_checkpoint
            torch.save(weights, f)
        (tmp / MODEL_META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def read_model_meta(model_dir: Path) -> ModelMeta:
    """The checked ``model.json`` of the model folder ``model_dir`` (both files must exist:
    :class:`MissingInputError`; bad JSON, keys or model_config: :class:`DataError`)."""
    model_dir = Path(model_dir)
    meta_path = model_dir / MODEL_META
    for p in (meta_path, model_dir / MODEL_WEIGHTS):
        if not p.is_file():
            raise MissingInputError(
                f"no trained model in {model_dir} ({p.name} is missing): "
                f"run `dvc repro average` first"
            )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise DataError(f"{meta_path}: not valid JSON ({e})") from None
    for key, typ in MODEL_META_KEYS:
        if not isinstance(meta.get(key), typ):
            raise DataError(f"{meta_path}: key {key!r} missing or not a {typ.__name__}")
    try:
        cfg = ModelConfig(**meta["model_config"])
    except TypeError as e:
        raise DataError(f"{meta_path}: bad model_config: {e}") from None
    tokenizer = resolve_tokenizer_path(meta["tokenizer"], model_dir)
    return ModelMeta(meta_path, cfg, meta["vocab_size"], tokenizer, meta["tokenizer_sha256"])


def load_model_weights(model_dir: Path) -> dict:
    """The state dict in ``model_dir/model.pt``, loaded weights-only, without the
    ``_orig_mod.`` (torch.compile) and ``module.`` (DDP) prefixes; :class:`DataError`."""
    weights = Path(model_dir) / MODEL_WEIGHTS
    state = load_weights_only(weights, what="model", fix="rebuild it with `dvc repro average`")
    if not isinstance(state, dict):
        raise DataError(f"{weights}: not a state dict")
    return _strip_prefixes(state)


def _strip_prefixes(state: dict) -> dict:
    """Drop ``_orig_mod.`` (torch.compile) and ``module.`` (DDP) prefixes from state keys."""
    out = {}
    for k, v in state.items():
        for prefix in ("_orig_mod.", "module."):
            while k.startswith(prefix):
                k = k[len(prefix) :]
        out[k] = v
    return out


# ----------------------------------------------------------------------------- RNG states


def capture_rng(device: Any = None) -> dict:
    """RNG states of torch (CPU and the current CUDA device), NumPy and Python's ``random``.

    Converted to tensors, numbers and lists so ``torch.load(weights_only=True)`` reads them.
    """
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    cuda = None
    if device is not None and getattr(device, "type", str(device)) == "cuda":
        cuda = torch.cuda.get_rng_state(device)
    return {
        "torch": torch.get_rng_state(),
        "cuda": cuda,
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": int(version), "state": list(internal), "gauss_next": gauss_next},
    }


def restore_rng(state: dict, device: Any = None) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") is not None and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)
    n = state["numpy"]
    np.random.set_state(
        (
            n["name"],
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))


def weights_checksum(model) -> str:
    """sha256 of a model's parameters and buffers (bitwise; to compare DDP ranks)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
