"""Attention pictures like Figures 3-5 of the paper: ``aiayn attention "a sentence"``.

The sentence is translated with the averaged model (beam search, the ``translate`` settings
of params.yaml), then the source and the chosen translation are run once more through the
model's decoding interface (``encode``, ``init_state``, ``decode_step``) inside
:meth:`aiayn.model.Transformer.capture_attention`, which hands back the softmax weights the
model's own attention computed. Nothing here recomputes attention.

One PNG per call, ``reports/attention/<sentence>-<hash>.<kind>.layer<l>.png``, with the
sentence and its translation in the title:

- top: one panel per head of the chosen layer (``--layer``, default the last);
- bottom: the mean over the heads, one panel per layer.

``--kind`` picks the attention: ``enc`` encoder self-attention (source x source), ``dec``
decoder self-attention (output x decoder input, zero above the diagonal: the future is
masked), ``cross`` encoder-decoder attention (output x source). A panel's row is a query,
its columns the keys; each row sums to 1. The colour scale of each panel runs from 0 to its
largest weight.

Token labels are the tokenizer's pieces made readable (:func:`piece_label`): byte-level BPE
stores a piece as printable stand-ins for its bytes (``Ġ`` for a space, ``Ã¤`` for the two
bytes of ``ä``); a label shows those bytes as UTF-8 text with a space drawn as ``▁`` (U+2581),
so ``Ġagreement`` is ``▁agreement`` and a word without ``▁`` continues the previous piece.
Bytes that are only part of a character (a character split between pieces) show as ``\\xNN``.
Decoder rows are labelled by the token that position *produced* (``</s>`` last); decoder
self-attention columns by the decoder *input* at that position (``<s>`` first).

Labels are thinned on long inputs: a panel shows every k-th label, k the smallest step that
fits the labels at their font size into the panel's side (:func:`label_step`).
"""

from __future__ import annotations

import hashlib
import math
import re
import sys
import textwrap
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

import typer

from aiayn import paths
from aiayn.errors import AiaynError
from aiayn.vocab import SPECIAL_TOKENS

if TYPE_CHECKING:
    import numpy as np

    from aiayn.config import TranslateConfig
    from aiayn.decode.translator import Translator

Kind = Literal["enc", "dec", "cross"]
KINDS: tuple[str, ...] = get_args(Kind)
TITLES = {
    "enc": "Encoder self-attention",
    "dec": "Decoder self-attention",
    "cross": "Encoder-decoder attention",
}
OUT_DIR = Path("reports/attention")
SPACE = "\u2581"  # '▁', how a label shows a space

FONT_SIZE = 7.0  # tick labels, points
LABEL_PITCH = 1.4  # room one tick label needs along an axis, in font sizes
MIN_PANEL, MAX_PANEL, INCH_PER_TOKEN = 2.0, 5.0, 0.13  # panel side, inches
COLUMNS = 4  # panels per row
DPI = 110
VIZ_HINT = 'pip install -e ".[viz]"'


# ----------------------------------------------------------------------------- labels


def _byte_decoder() -> dict[str, int]:
    """Byte-level BPE's stand-in character -> the byte it stands for (all 256 bytes).

    Printable Latin-1 bytes stand for themselves; the others (controls, space, 0x7f-0xa0,
    0xad) are given the characters from U+0100 on, in byte order (GPT-2's table, which the
    ``tokenizers`` ByteLevel pre-tokenizer uses).
    """
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table = {chr(b): b for b in printable}
    others = [b for b in range(256) if b not in set(printable)]
    table.update({chr(0x100 + n): b for n, b in enumerate(others)})
    return table


BYTE_OF = _byte_decoder()


def piece_label(piece: str) -> str:
    """A readable label for one tokenizer piece (see the module docstring).

    ``"Ġagreement"`` -> ``"▁agreement"``, ``"Ã¤"`` -> ``"ä"``, ``"Ã"`` -> ``"\\xc3"``;
    special tokens and pieces that are not byte-level stay as they are.
    """
    if piece in SPECIAL_TOKENS or any(c not in BYTE_OF for c in piece):
        return piece
    text = bytes(BYTE_OF[c] for c in piece).decode("utf-8", errors="backslashreplace")
    return "".join(
        SPACE if c == " " else c if c.isprintable() else c.encode("unicode_escape").decode()
        for c in text
    )


def token_labels(tokenizer: Any, ids: list[int]) -> list[str]:
    """:func:`piece_label` of each id's piece in ``tokenizer``."""
    return [piece_label(tokenizer.id_to_token(int(i))) for i in ids]


# ----------------------------------------------------------------------------- collecting


@dataclass
class AttentionMaps:
    """The attention of one sentence and its translation, as numpy arrays (float32).

    S source positions (BPE tokens and </s>), T decoder positions (<s> and the output).
    """

    sentence: str
    translation: str
    src_labels: list[str]  # (S,) source pieces, </s> last
    in_labels: list[str]  # (T,) decoder inputs: <s>, then the output pieces
    out_labels: list[str]  # (T,) what each decoder position produced: output pieces, </s>
    logprob: float  # log P(translation, </s> | sentence) summed over the captured steps
    enc: list[np.ndarray] = field(default_factory=list)  # per layer (h, S, S)
    dec: list[np.ndarray] = field(default_factory=list)  # per layer (h, T, T), 0 above diag
    cross: list[np.ndarray] = field(default_factory=list)  # per layer (h, T, S)

    def panels(self, kind: str) -> tuple[list[np.ndarray], list[str], list[str], str, str]:
        """(per-layer weights (h, rows, cols), row labels, column labels, row axis name,
        column axis name) of ``kind``."""
        if kind == "enc":
            return self.enc, self.src_labels, self.src_labels, "source (query)", "source (key)"
        if kind == "dec":
            return self.dec, self.out_labels, self.in_labels, "output (query)", "decoder input"
        if kind == "cross":
            return self.cross, self.out_labels, self.src_labels, "output (query)", "source"
        raise AiaynError(f"--kind must be one of {', '.join(KINDS)}; got {kind!r}")


def source_ids(translator: Translator, sentence: str) -> list[int]:
    """The BPE ids of ``sentence`` (one line, no </s>), or an AiaynError it cannot be
    pictured: empty, several lines, or longer than the model's positions."""
    if not sentence.strip():
        raise AiaynError("nothing to translate: the sentence is empty")
    if "\n" in sentence or "\r" in sentence:
        raise AiaynError("give one sentence on one line (it holds a line break)")
    ids = translator.tokenizer.encode(sentence)
    limit = translator.max_positions
    if limit is not None and len(ids) > limit - 1:
        raise AiaynError(
            f"the sentence has {len(ids)} BPE tokens; this model takes at most {limit - 1} "
            f"(model.max_positions={limit})"
        )
    return ids


def collect_attention(translator: Translator, sentence: str, cfg: TranslateConfig) -> AttentionMaps:
    """Translate ``sentence`` (best hypothesis of ``cfg``'s search), then capture every
    attention of the model while it reads the sentence and writes that translation."""
    import torch

    from aiayn.decode.translator import one_line
    from aiayn.vocab import BOS, EOS

    src_ids = source_ids(translator, sentence)
    best = translator.hypotheses([sentence], cfg, nbest=1)[0][0]
    model, device = translator.model, translator.device
    steps = [BOS, *best.tokens]  # decoder inputs, (T,)
    produced = [*best.tokens, EOS]  # what each position chose, (T,)
    logprob = 0.0
    with torch.inference_mode(), model.capture_attention() as att:
        enc = model.encode(torch.tensor([[*src_ids, EOS]], device=device))  # (1, S)
        state = model.init_state(enc)
        for token, chosen in zip(steps, produced, strict=True):
            logits = model.decode_step(torch.tensor([token], device=device), state)  # (1, V)
            logprob += float(torch.log_softmax(logits.float(), dim=-1)[0, chosen])
    tok = translator.tokenizer
    return AttentionMaps(
        sentence=sentence,
        translation=one_line(tok.decode(best.tokens)),
        src_labels=token_labels(tok, [*src_ids, EOS]),
        in_labels=token_labels(tok, steps),
        out_labels=token_labels(tok, produced),
        logprob=logprob,
        enc=[calls[0][0].cpu().numpy() for calls in att.encoder],
        dec=[_stack_steps(calls, causal=True) for calls in att.decoder],
        cross=[_stack_steps(calls, causal=False) for calls in att.cross],
    )


def _stack_steps(calls: list, causal: bool) -> np.ndarray:
    """One decoding step's weights per call, (1, h, 1, keys) each -> (h, T, K). Causal
    self-attention has t + 1 keys at step t; the future columns are 0."""
    import numpy as np

    rows = [c[0, :, 0].float().cpu().numpy() for c in calls]  # (h, keys) each
    width = len(rows) if causal else rows[0].shape[1]
    out = np.zeros((rows[0].shape[0], len(rows), width), dtype=np.float32)  # (h, T, K)
    for t, r in enumerate(rows):
        out[:, t, : r.shape[1]] = r
    return out


# ----------------------------------------------------------------------------- drawing


def new_figure(**kwargs):
    """A matplotlib Figure on its own Agg canvas (no pyplot: no global state, no backend
    switch in a user's session), or an AiaynError naming the extra to install."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise AiaynError(
            f"attention pictures need matplotlib, which is not installed: {VIZ_HINT}"
        ) from None
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def label_step(n: int, length_in: float, font_size: float = FONT_SIZE) -> int:
    """Show every k-th of ``n`` labels along an axis ``length_in`` inches long: the smallest
    k such that the shown labels, ``LABEL_PITCH`` font sizes apart, fit (k >= 1)."""
    fits = max(1, math.floor(length_in * 72 / (font_size * LABEL_PITCH)))
    return max(1, math.ceil(n / fits))


def _panel_inches(n: int) -> float:
    return min(max(INCH_PER_TOKEN * n, MIN_PANEL), MAX_PANEL)


def _set_ticks(ax: Any, rows: list[str], cols: list[str]) -> bool:
    """Thin the tick labels of ``ax`` to its current size; True when they changed."""
    box = ax.get_window_extent()  # pixels
    dpi = ax.get_figure(root=True).dpi
    steps = (label_step(len(cols), box.width / dpi), label_step(len(rows), box.height / dpi))
    if getattr(ax, "_label_steps", None) == steps:
        return False
    ax._label_steps = steps
    xs, ys = range(0, len(cols), steps[0]), range(0, len(rows), steps[1])
    ax.set_xticks(list(xs), [cols[i] for i in xs], rotation=90, fontsize=FONT_SIZE)
    ax.set_yticks(list(ys), [rows[i] for i in ys], fontsize=FONT_SIZE)
    return True


def _heatmap(ax: Any, weights: np.ndarray, rows: list[str], cols: list[str], title: str) -> None:
    """One panel: ``weights`` (rows, cols), colour from 0 to its maximum."""
    ax.imshow(weights, cmap="Blues", vmin=0.0, vmax=float(weights.max()), aspect="auto")
    ax.set_title(title, fontsize=9)
    ax.tick_params(length=2, pad=1)
    _set_ticks(ax, rows, cols)


def _grid(subfig: Any, n: int, ncols: int) -> list:
    """``n`` axes in rows of ``ncols``; unused cells hidden."""
    nrows = math.ceil(n / ncols)
    axes = list(subfig.subplots(nrows, ncols, squeeze=False).flat)
    for ax in axes[n:]:
        ax.set_visible(False)
    return axes[:n]


def draw_attention(maps: AttentionMaps, kind: str, layer: int | None = None):
    """The figure for ``kind`` (enc/dec/cross): the heads of ``layer`` (1-based, default
    the last) on top, the mean over heads of every layer below. Returns the Figure."""
    per_layer, rows, cols, row_name, col_name = maps.panels(kind)
    n_layers, n_heads = len(per_layer), per_layer[0].shape[0]
    layer = resolve_layer(layer, n_layers)
    pw, ph = _panel_inches(len(cols)), _panel_inches(len(rows))
    margin = 1.0 + max(len(s) for s in rows + cols) * FONT_SIZE * 0.6 / 72  # labels, inches
    ncols = min(max(n_heads, n_layers), COLUMNS)  # both sections: panels of one size
    head_rows, layer_rows = math.ceil(n_heads / ncols), math.ceil(n_layers / ncols)
    width = ncols * (pw + margin) + 0.3
    title = textwrap.fill(
        f'{TITLES[kind]}: "{maps.sentence}" \u2192 "{maps.translation}"',
        width=max(40, int(width * 72 / (11 * 0.75))),  # characters of 11 points per line
    )
    title_in = (title.count("\n") + 1) * 11 * 1.3 / 72 + 0.2
    height = (head_rows + layer_rows) * (ph + margin + 0.3) + title_in
    fig = new_figure(figsize=(width, height), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[head_rows, layer_rows])
    top.suptitle(f"Layer {layer} of {n_layers}, each head", fontsize=10)
    bottom.suptitle(f"Mean over the {n_heads} heads, each layer", fontsize=10)
    panels = []
    weights = per_layer[layer - 1]  # (h, rows, cols)
    for h, ax in enumerate(_grid(top, n_heads, ncols)):
        panels.append((ax, weights[h], f"head {h + 1}"))
    for i, ax in enumerate(_grid(bottom, n_layers, ncols)):
        panels.append((ax, per_layer[i].mean(axis=0), f"layer {i + 1}"))
    for ax, w, name in panels:
        _heatmap(ax, w, rows, cols, name)
    for ax, _, _ in panels[:1] + panels[n_heads : n_heads + 1]:
        ax.set_ylabel(row_name, fontsize=8)
    for ax, _, _ in panels:
        ax.set_xlabel(col_name, fontsize=8)
    fig.suptitle(title, fontsize=11)
    # The layout decides the panels' final size; thin the labels to it until nothing changes.
    for _ in range(3):
        fig.draw_without_rendering()
        if not any([_set_ticks(ax, rows, cols) for ax, _, _ in panels]):
            break
    return fig


def resolve_layer(layer: int | None, n_layers: int) -> int:
    """``layer`` (1-based), or the last of ``n_layers`` for None; an AiaynError if out of range."""
    if layer is None:
        return n_layers
    if not 1 <= layer <= n_layers:
        raise AiaynError(f"--layer must be between 1 and {n_layers}; got {layer}")
    return layer


def output_path(sentence: str, kind: str, layer: int, out_dir: Path) -> Path:
    """``out_dir/<first words>-<hash>.<kind>.layer<l>.png`` (ASCII, at most ~60 characters)."""
    ascii_text = unicodedata.normalize("NFKD", sentence).encode("ascii", "ignore").decode()
    slug = "-".join(re.findall(r"[a-z0-9]+", ascii_text.lower()))[:40].strip("-") or "sentence"
    digest = hashlib.sha256(sentence.encode("utf-8")).hexdigest()[:8]
    return out_dir / f"{slug}-{digest}.{kind}.layer{layer}.png"


def write_attention(maps: AttentionMaps, kind: str, layer: int | None, out_dir: Path) -> Path:
    """Draw ``kind`` and write it as a PNG under ``out_dir`` (atomically); the path."""
    from aiayn.fsio import atomic_path

    fig = draw_attention(maps, kind, layer)
    out = output_path(maps.sentence, kind, resolve_layer(layer, len(maps.panels(kind)[0])), out_dir)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return out


def picture(
    translator: Translator,
    sentence: str,
    cfg: TranslateConfig,
    kind: str = "enc",
    layer: int | None = None,
    out_dir: Path = OUT_DIR,
) -> tuple[Path, AttentionMaps]:
    """Translate ``sentence``, capture its attention and write the picture: (path, maps)."""
    from aiayn.fsio import ensure_writable_dir

    new_figure()  # without matplotlib, fail before translating
    if kind not in KINDS:
        raise AiaynError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    resolve_layer(
        layer, len(translator.model.encoder if kind == "enc" else translator.model.decoder)
    )
    source_ids(translator, sentence)  # a sentence that cannot be pictured fails here
    ensure_writable_dir(out_dir)  # and so does an output folder that cannot be written
    maps = collect_attention(translator, sentence, cfg)
    return write_attention(maps, kind, layer, out_dir), maps


# ----------------------------------------------------------------------------- command


def attention_command(
    sentence: Annotated[str, typer.Argument(help="an English sentence, in quotes")],
    layer: Annotated[
        int | None,
        typer.Option(help="layer to show head by head, 1 = the first (default: the last)"),
    ] = None,
    kind: Annotated[
        Kind,
        typer.Option(
            help="enc: encoder self-attention; dec: decoder self-attention; "
            "cross: encoder-decoder attention"
        ),
    ] = "enc",
    out_dir: Annotated[Path, typer.Option("--out-dir", "-o", help="folder for the PNG")] = OUT_DIR,
    model_dir: Annotated[
        Path, typer.Option(help="averaged model folder (model.pt + model.json)")
    ] = paths.MODEL,
    params: Annotated[
        Path | None,
        typer.Option(help="params file for the translate settings (default: params.yaml)"),
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda")] = None,
    precision: Annotated[str | None, typer.Option(help="auto, mixed, fp32, fp16 or bf16")] = None,
) -> None:
    """Translate a sentence and draw its attention as heatmaps (the paper's Figures 3-5)."""
    from aiayn.decode.cli import translate_settings
    from aiayn.decode.translator import Translator

    new_figure()  # without matplotlib, fail before loading the model
    cfg = translate_settings(
        params, device=device, precision=precision, nbest=1, where="aiayn attention"
    )
    translator = Translator.load(model_dir, device=cfg.device, precision=cfg.precision)
    print(translator.precision.describe(), file=sys.stderr)
    path, maps = picture(translator, sentence, cfg, kind, layer, out_dir)
    print(f"{maps.sentence} -> {maps.translation}", file=sys.stderr)
    print(path, flush=True)
