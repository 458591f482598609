"""``aiayn translate``: translate text by hand with the pipeline's averaged model.

Run in the project folder with no arguments, it reads English lines from stdin and writes
German to stdout with ``data/model`` and the ``translate`` section of ``params.yaml``. Heavy
imports (torch, tokenizers) happen inside the command.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, get_args, get_type_hints

import typer

from aiayn import paths
from aiayn.config import TranslateConfig
from aiayn.errors import AiaynError, ConfigError

ENGINES = ("aiayn", "ctranslate2")


def _choices(key: str) -> tuple[str, ...]:
    return get_args(get_type_hints(TranslateConfig)[key])


def _read_input(input: Path | None) -> list[str]:
    """Lines of ``input`` (or stdin), split on ``\\n`` only."""
    from aiayn.decode.translator import read_text_lines

    if input is not None:
        return read_text_lines(input)
    try:
        text = sys.stdin.buffer.read().decode("utf-8")
    except UnicodeDecodeError as e:
        raise AiaynError(f"stdin: not UTF-8 text (byte {e.start})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _format(index: int, translations, nbest: int) -> list[str]:
    """Output lines for one input line: the text, or Moses n-best ``i ||| text ||| score``."""
    if nbest == 1:
        return [translations[0].text if translations else ""]
    return [f"{index} ||| {t.text} ||| {t.score:.4f}" for t in translations]


def translate(
    input: Annotated[
        Path | None, typer.Argument(help="English text, one sentence per line (default: stdin)")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write here instead of stdout")
    ] = None,
    model_dir: Annotated[
        Path, typer.Option(help="averaged model folder (model.pt + model.json)")
    ] = paths.MODEL,
    params: Annotated[
        Path | None,
        typer.Option(
            help="params file for the translate settings (default: params.yaml if it "
            "exists, else the paper's settings)"
        ),
    ] = None,
    beam_size: Annotated[int | None, typer.Option(help="beam width, 1: greedy")] = None,
    nbest: Annotated[
        int | None,
        typer.Option(
            help="print the N best as `line ||| text ||| score` (widens the beam to N if needed)"
        ),
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda")] = None,
    precision: Annotated[
        str | None, typer.Option(help="auto, mixed, fp32, fp16 or bf16 (engine aiayn)")
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            help="aiayn (the PyTorch model in --model-dir) or ctranslate2 (--model-dir is a "
            "folder from `aiayn export --to ctranslate2`)"
        ),
    ] = "aiayn",
) -> None:
    """Translate English lines (a file or stdin) into German with the averaged model."""
    from aiayn.config import load_params
    from aiayn.decode.translator import Translator, check_translate_config
    from aiayn.fsio import atomic_file

    if params is not None:
        cfg = load_params(params).translate
    elif paths.PARAMS.exists():
        cfg = load_params(paths.PARAMS).translate
    else:
        cfg = TranslateConfig()
    overrides = {"beam_size": beam_size, "nbest": nbest, "device": device, "precision": precision}
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    if nbest is not None and beam_size is None and cfg.beam_size < nbest:
        cfg = replace(cfg, beam_size=nbest)  # --nbest 5 alone widens the beam to 5
    for key in ("device", "precision"):
        if getattr(cfg, key) not in _choices(key):
            raise ConfigError(
                f"--{key} must be one of {', '.join(_choices(key))}; got {getattr(cfg, key)!r}"
            )
    check_translate_config(cfg, where="aiayn translate")
    if engine not in ENGINES:
        raise ConfigError(f"--engine must be one of {', '.join(ENGINES)}; got {engine!r}")

    if engine == "ctranslate2":
        from aiayn.decode.ctranslate2 import Ctranslate2Translator

        if precision is not None:
            raise ConfigError(
                "--precision applies to --engine aiayn; a CTranslate2 model keeps the "
                "quantization it was exported with (aiayn export --quantization)"
            )
        translator = Ctranslate2Translator.load(model_dir, device=cfg.device)
    else:
        translator = Translator.load(model_dir, device=cfg.device, precision=cfg.precision)
    interactive = input is None and output is None and sys.stdin.isatty()
    if interactive:
        print("Type English sentences, one per line (Ctrl-D to end).", file=sys.stderr)
        for i, line in enumerate(sys.stdin):
            best = translator.translate_nbest([line.rstrip("\n")], cfg, progress=False)[0]
            print("\n".join(_format(i, best, cfg.nbest)), flush=True)
        return

    lines = _read_input(input)
    results = translator.translate_nbest(lines, cfg)
    out_lines = [s for i, r in enumerate(results) for s in _format(i, r, cfg.nbest)]
    text = "".join(s + "\n" for s in out_lines)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        with atomic_file(output) as f:
            f.write(text)
