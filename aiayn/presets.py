"""Parameter presets: complete ``params.yaml`` files under ``configs/``, and ``aiayn preset``.

``configs/demo.yaml`` is the repository's ``params.yaml`` (the offline demo);
``configs/base.yaml`` and ``configs/big.yaml`` are the paper's Transformer base and big runs
on WMT14. A preset is a whole file with every key and real values, never a name that params
point to, so after switching ``dvc params diff`` shows exactly which values changed::

    aiayn preset            # list the presets and which one params.yaml equals
    aiayn preset base       # params.yaml := configs/base.yaml (validated, written atomically)

Switching refuses to overwrite a ``params.yaml`` whose values no preset holds (edits would be
lost) unless ``--force`` is given. The preset file is validated first, so a broken preset
never replaces a working ``params.yaml``.

The ``model`` sections of the files are generated: :data:`aiayn.model.PRESETS` is their one
owner, and ``aiayn preset --write`` rewrites each file's model values from it (comments and
layout kept; :func:`render_model_section`). tests/test_presets.py checks that the committed
files are what ``--write`` would write.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from aiayn import paths
from aiayn.errors import ConfigError

CONFIGS = Path("configs")


def list_presets(configs: Path = CONFIGS) -> dict[str, Path]:
    """Preset name -> file, for every ``*.yaml`` in ``configs`` (sorted by name)."""
    if not configs.is_dir():
        raise ConfigError(f"{configs}: presets folder not found (run from the project root)")
    return {p.stem: p for p in sorted(configs.glob("*.yaml"))}


def _read_yaml(path: Path) -> Any:
    """The parsed YAML of ``path``, or None when it is missing, not YAML or repeats a key."""
    from aiayn.config import read_yaml

    try:
        return read_yaml(path)[0]
    except ConfigError:
        return None


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix.rstrip("."): d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}."))
    return out


def _normalised(data: Any) -> dict[str, Any] | None:
    """Flat {dotted key: value} of validated params (numbers as the loader reads them)."""
    from aiayn.config import params_from_dict, to_dict

    try:
        return _flatten(to_dict(params_from_dict(data)))
    except ConfigError:
        return _flatten(data) if isinstance(data, dict) else None


def differences(a: Any, b: Any) -> list[tuple[str, Any, Any]]:
    """(dotted key, value in a, value in b) for every key whose values differ."""
    fa, fb = _normalised(a) or {}, _normalised(b) or {}
    missing = object()
    rows = []
    for key in list(fa) + [k for k in fb if k not in fa]:
        va, vb = fa.get(key, missing), fb.get(key, missing)
        if va != vb:
            rows.append((key, None if va is missing else va, None if vb is missing else vb))
    return rows


def matching_preset(params: Path = paths.PARAMS, configs: Path = CONFIGS) -> str | None:
    """The name of the preset whose values equal those of ``params`` (None if none does)."""
    current = _read_yaml(params)
    if current is None:
        return None
    for name, path in list_presets(configs).items():
        if not differences(current, _read_yaml(path)):
            return name
    return None


def describe_preset(path: Path) -> str:
    """A one-line summary of a preset's main values (or why it is invalid)."""
    from aiayn.config import load_params

    try:
        p = load_params(path)
    except ConfigError as e:
        return f"invalid: {e}"
    m, t = p.model, p.train
    return (
        f"{p.data.source}, {m.encoder_layers}+{m.decoder_layers} layers, d_model {m.d_model}, "
        f"vocab {p.tokenizer.vocab_size}, {t.max_steps} steps of {t.tokens_per_step} tokens, "
        f"average {p.average.last}, beam {p.translate.beam_size}"
    )


def _closest(current: Any, configs: Path) -> tuple[str, list[tuple[str, Any, Any]]]:
    """The preset with the fewest differences from ``current``, and those differences."""
    best = min(
        (
            (name, differences(_read_yaml(path), current))
            for name, path in list_presets(configs).items()
        ),
        key=lambda item: len(item[1]),
    )
    return best


def apply_preset(
    name: str, params: Path = paths.PARAMS, configs: Path = CONFIGS, force: bool = False
) -> Path:
    """Replace ``params`` with ``configs/<name>.yaml`` (byte for byte, comments included).

    Raises :class:`ConfigError` for an unknown preset, an invalid preset file (the message
    names its line and key), or a ``params`` holding values that no preset has (unless
    ``force``). ``params`` is written atomically and keeps its file mode. Returns the preset
    file.
    """
    from aiayn.config import load_params
    from aiayn.fsio import atomic_file

    presets = list_presets(configs)
    if name not in presets:
        known = ", ".join(presets) or "none"
        raise ConfigError(f"unknown preset {name!r}; presets in {configs}/: {known}")
    source = presets[name]
    load_params(source)  # a broken preset never replaces a working params file
    if params.exists() and not force and matching_preset(params, configs) is None:
        current = _read_yaml(params)
        if isinstance(current, dict):
            near, rows = _closest(current, configs)
            key, theirs, ours = rows[0]
            what = f"{key}: {ours!r}, preset {near} has {theirs!r}"
            if len(rows) > 1:
                what += f", and {len(rows) - 1} more"
        else:
            what = "it is not a valid params file"
        raise ConfigError(
            f"{params} holds values that no preset in {configs}/ has ({what}); "
            f"commit it or save it as {configs}/<name>.yaml, or pass --force to overwrite it"
        )
    mode = params.stat().st_mode & 0o777 if params.exists() else 0o644
    text = source.read_bytes()
    with atomic_file(params, "wb") as f:
        f.write(text)
        os.fchmod(f.fileno(), mode)
    return source


def _yaml_scalar(value: Any) -> str:
    """``value`` (bool, int, float or plain string) as the files write it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def render_model_section(text: str, model: Any, where: str = "preset") -> str:
    """``text`` (a params file) with every ``model.<key>`` value set from ``model`` (a
    ModelConfig); each line keeps its indentation and its comment, at the same column when the
    value still fits. A key the file lacks is a ConfigError naming it (add its line)."""
    from aiayn.config import read_yaml_text

    _, lines = read_yaml_text(text, where)
    out = text.split("\n")
    for field in dataclasses.fields(model):
        key = f"model.{field.name}"
        if key not in lines:
            raise ConfigError(f"{where}: no {key}; add its line (with a comment) to the file")
        i = lines[key] - 1
        m = re.fullmatch(r"(\s*\S+:\s*)([^#]*?)(\s*)(#.*)?", out[i])
        if m is None:  # pragma: no cover - read_yaml_text found the key on this line
            raise ConfigError(f"{where}:{i + 1}: cannot rewrite {key}")
        head, _, gap, comment = m.groups()
        line = head + _yaml_scalar(getattr(model, field.name))
        if comment:
            column = len(head) + len(m.group(2)) + len(gap)
            line = line.ljust(column) if len(line) < column else line + "  "
            line += comment
        out[i] = line
    return "\n".join(out)


def write_model_presets(configs: Path = CONFIGS) -> list[Path]:
    """Rewrite the model section of ``configs/<name>.yaml`` for each name in
    :data:`aiayn.model.PRESETS` (atomically); returns the files that changed."""
    from aiayn.fsio import atomic_file
    from aiayn.model import PRESETS

    presets = list_presets(configs)
    changed = []
    for name, model in PRESETS.items():
        if name not in presets:
            raise ConfigError(f"{configs}/{name}.yaml not found (aiayn.model.PRESETS has {name})")
        path = presets[name]
        text = path.read_text(encoding="utf-8")
        new = render_model_section(text, model, str(path))
        if new != text:
            with atomic_file(path, "w", encoding="utf-8", newline="\n") as f:
                f.write(new)
            changed.append(path)
    return changed


def preset_command(
    name: Annotated[
        str | None, typer.Argument(help="preset to switch to (a file configs/NAME.yaml)")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="overwrite params.yaml even if no preset has it")
    ] = False,
    params: Annotated[Path, typer.Option(help="params file to write")] = paths.PARAMS,
    configs: Annotated[Path, typer.Option(help="folder of presets")] = CONFIGS,
    write: Annotated[
        bool,
        typer.Option(
            "--write", help="rewrite the model sections of configs/*.yaml from aiayn.model.PRESETS"
        ),
    ] = False,
) -> None:
    """Switch params.yaml to a complete preset (demo, base, big), or list the presets."""
    if write:
        changed = write_model_presets(configs)
        for path in changed:
            print(f"{path}: model section rewritten from aiayn.model.PRESETS")
        print(f"{len(changed)} preset file(s) changed", end="")
        print("; `aiayn preset demo` then copies the demo into params.yaml" if changed else "")
        return
    if name is None:
        current = matching_preset(params, configs)
        for preset, path in list_presets(configs).items():
            mark = "*" if preset == current else " "
            print(f"{mark} {preset:<6} {path}: {describe_preset(path)}")
        if current is None:
            print(f"  ({params} matches no preset)")
        return
    before = _read_yaml(params) if params.exists() else None
    source = apply_preset(name, params, configs, force)
    rows = differences(before, _read_yaml(source)) if before is not None else []
    print(f"{params} is now {source} ({len(rows)} values changed)")
    for key, old, new in rows[:12]:
        print(f"  {key}: {old!r} -> {new!r}")
    if len(rows) > 12:
        print(f"  ... and {len(rows) - 12} more")
    print(
        "Next: `dvc params diff` to review, `dvc repro` to run (`git checkout params.yaml` undoes it)."
    )
