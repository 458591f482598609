"""``aiayn translate``: translate text by hand with the pipeline's averaged model.

Run in the project folder with no arguments, it reads English lines from stdin and writes
German to stdout with ``data/model`` and the ``translate`` section of ``params.yaml``. Heavy
imports (torch, tokenizers) happen inside the command.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from aiayn import paths
from aiayn.config import TranslateConfig
from aiayn.errors import AiaynError, ConfigError

ENGINES = ("aiayn", "ctranslate2")


def _read_input(input: Path | None) -> list[str]:
    """Lines of ``input`` (or stdin), split on ``\\n`` only."""
    from aiayn.decode.translator import read_text_lines
    from aiayn.fsio import decode_lines

    if input is not None:
        return read_text_lines(input)
    return decode_lines(sys.stdin.buffer.read(), "stdin", strip_cr=True)


def _check_output(output: Path) -> None:
    """Refuse an ``-o`` that cannot be written before any translating is done."""
    from aiayn.fsio import ensure_writable_dir

    if output.is_dir():
        raise AiaynError(f"-o {output} is a folder; give a file name (e.g. {output}/out.de)")
    ensure_writable_dir(output.parent)
    if output.exists() and not output.is_file():
        raise AiaynError(f"-o {output} is not a regular file; give a file name")


def _interactive(translator, cfg: TranslateConfig) -> None:
    """Translate stdin (a terminal) line by line as lines are typed.

    A line that is not UTF-8 gets a one-line error (and an empty output line, so output
    lines stay aligned with input lines) and the session goes on; the exit status is then 1.
    """
    from aiayn.fsio import write_stdout

    print("Type English sentences, one per line (Ctrl-D to end).", file=sys.stderr)
    bad = 0
    for i, raw in enumerate(sys.stdin.buffer):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            bad += 1
            print(
                f"error: stdin line {i + 1}: not UTF-8 text (byte 0x{raw[e.start]:02X} at "
                f"offset {e.start} of the line); type or paste UTF-8 text",
                file=sys.stderr,
                flush=True,
            )
            write_stdout("\n" if cfg.nbest == 1 else "")
            continue
        line = line.removesuffix("\n").removesuffix("\r")
        best = translator.translate_nbest([line], cfg, progress=False)[0]
        write_stdout("".join(s + "\n" for s in _format(i, best, cfg.nbest)))
    if bad:
        raise SystemExit(1)


def _format(index: int, translations, nbest: int) -> list[str]:
    """Output lines for one input line: the text, or Moses n-best ``i ||| text ||| score``."""
    if nbest == 1:
        return [translations[0].text if translations else ""]
    return [f"{index} ||| {t.text} ||| {t.score:.4f}" for t in translations]


def translate_settings(
    params: Path | None,
    beam_size: int | None = None,
    nbest: int | None = None,
    device: str | None = None,
    precision: str | None = None,
    where: str = "aiayn translate",
    search_rules: str | None = None,
) -> TranslateConfig:
    """The translate section of ``params`` (default: params.yaml if it exists, else the
    paper's settings) with the command line's options over it, checked."""
    from aiayn.config import ParamError, load_params

    if params is not None:
        cfg = load_params(params).translate
    elif paths.PARAMS.exists():
        cfg = load_params(paths.PARAMS).translate
    else:
        cfg = TranslateConfig()
    overrides = {
        "beam_size": beam_size,
        "search_rules": search_rules,
        "nbest": nbest,
        "device": device,
        "precision": precision,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if nbest is not None and beam_size is None and cfg.beam_size < nbest:
        overrides["beam_size"] = nbest  # --nbest 5 alone widens the beam to 5
    try:
        return replace(cfg, **overrides)  # TranslateConfig checks itself
    except ParamError as e:
        name = e.key.removeprefix("translate.")
        if e.key.startswith("translate.") and name in overrides:
            raise ConfigError(f"--{name.replace('_', '-')} {e.msg}") from None
        raise ConfigError(f"{where}: {e}") from None


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
    search_rules: Annotated[
        str | None, typer.Option(help="beam search rules: t2t (the paper's) or fairseq")
    ] = None,
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
    from aiayn.decode.translator import Translator
    from aiayn.fsio import atomic_file, write_stdout

    cfg = translate_settings(
        params,
        beam_size=beam_size,
        search_rules=search_rules,
        nbest=nbest,
        device=device,
        precision=precision,
    )
    if engine not in ENGINES:
        raise ConfigError(f"--engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    if engine == "ctranslate2" and precision is not None:
        raise ConfigError(
            "--precision applies to --engine aiayn; a CTranslate2 model keeps the "
            "quantization it was exported with (aiayn export --quantization)"
        )
    interactive = input is None and output is None and sys.stdin.isatty()
    # Inputs and the output are checked before the model is loaded and the text translated.
    lines = None if interactive else _read_input(input)
    if output is not None:
        _check_output(output)

    if engine == "ctranslate2":
        from aiayn.decode.ctranslate2 import Ctranslate2Translator

        translator = Ctranslate2Translator.load(model_dir, device=cfg.device)
    else:
        translator = Translator.load(model_dir, device=cfg.device, precision=cfg.precision)
    if lines is None:
        _interactive(translator, cfg)
        return
    results = translator.translate_nbest(lines, cfg)
    out_lines = [s for i, r in enumerate(results) for s in _format(i, r, cfg.nbest)]
    text = "".join(s + "\n" for s in out_lines)
    if output is None:
        write_stdout(text)
    else:
        with atomic_file(output) as f:
            f.write(text)
