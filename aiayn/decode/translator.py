"""Translate text with an averaged model: ``Translator`` and the ``translate`` stage.

``Translator.load(model_dir)`` reads ``model_dir/model.json`` (model config, vocabulary size,
tokenizer path and sha256) and ``model_dir/model.pt`` (weights only). ``translate(lines, cfg)``
returns one detokenized line per input line, in input order:

- empty (or whitespace-only) lines give empty lines without being decoded;
- the other lines are BPE-encoded, ``</s>`` appended, sorted by length (longest first) and
  cut into batches of at most ``cfg.max_tokens`` padded source tokens, decoded by
  :func:`aiayn.decode.search.search`, and written back in input order;
- the maximum output length is ``floor(max_len_a * n + max_len_b)`` BPE tokens before
  ``</s>`` (paper: n + 50), n the source length in BPE tokens without ``</s>``, capped so
  the output fits ``model.max_positions``; a source longer than the positions the model has
  is cut to fit (with a warning naming how many lines);
- an output never contains a line break (one output line per input line, never a shifted
  file): any line or paragraph separator the model produces becomes a space.
"""

from __future__ import annotations

import math
import os
import re
import sys
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiayn.config import TranslateConfig, check_nbest
from aiayn.decode.search import Hypothesis
from aiayn.errors import ConfigError, DataError
from aiayn.vocab import EOS, PAD

if TYPE_CHECKING:
    import torch

    from aiayn.precision import Precision

# Everything str.splitlines() treats as a line boundary.
_LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")

# Show a progress bar from this many lines on (the REPL's tr("...") stays quiet).
PROGRESS_MIN_LINES = 200


def one_line(text: str) -> str:
    """``text`` with every line break replaced by a space."""
    return _LINE_BREAKS.sub(" ", text)


def read_text_lines(path: str | os.PathLike) -> list[str]:
    """Lines of a UTF-8 file split on ``\\n`` only (a trailing ``\\r`` is dropped too)."""
    from aiayn.fsio import read_lines

    return read_lines(path, strip_cr=True)


@dataclass
class Translation:
    """One hypothesis as text."""

    text: str
    score: float
    tokens: list[int]


class Translator:
    """A model, its tokenizer and a device: translates lists of lines."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        device: torch.device | str = "cpu",
        max_positions: int | None = None,
        precision: Precision | None = None,
    ):
        """``model`` implements the decoding API of docs/design.md, ``tokenizer`` has
        ``encode_batch`` and ``decode``; ``max_positions`` bounds source and output length
        (default: ``model.cfg.max_positions`` when the model has one, else unbounded);
        ``precision``: the autocast decoding runs under, and why (:meth:`load` sets it; None:
        none). The weights stay as they are (fp32 from :meth:`load`), as in training."""
        import torch

        self.model = model
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        if max_positions is None:
            cfg = getattr(model, "cfg", None)
            max_positions = getattr(cfg, "max_positions", None)
        self.max_positions = max_positions
        self.precision = precision

    # -- loading

    @classmethod
    def load(
        cls, model_dir: str | os.PathLike, device: str = "auto", precision: str = "auto"
    ) -> Translator:
        """The averaged model of ``model_dir`` (``model.pt`` + ``model.json``) with its
        tokenizer, on ``device`` (auto/cpu/cuda) in ``precision`` (auto/mixed/fp32/fp16/bf16,
        resolved by :func:`aiayn.precision.select_precision`: auto is fp32 on CPU, bf16
        or fp16 on a GPU; mixed is also bf16 on a CPU where bf16 is fast). The choice and its
        reason are in ``translator.precision``.

        The weights stay float32 and fp16/bf16 decoding runs under ``torch.autocast``, as
        training's forward pass does: matrix products in half precision, while the
        positional table, the residual stream, layer norms and softmax stay float32. (Casting
        the whole model to half precision would round those too, and change translations.)"""

        from aiayn.checkpoint import MODEL_WEIGHTS, load_model_weights, read_model_meta
        from aiayn.model import Transformer
        from aiayn.precision import select_device, select_precision
        from aiayn.tokenizer import load_tokenizer

        model_dir = Path(model_dir)
        meta = read_model_meta(model_dir)
        tok_path = meta.tokenizer
        tokenizer = load_tokenizer(tok_path)
        if tokenizer.sha256 != meta.tokenizer_sha256:
            raise DataError(
                f"{tok_path} (sha256 {tokenizer.sha256[:12]}) is not the tokenizer the model "
                f"in {model_dir} was trained with (sha256 {meta.tokenizer_sha256[:12]})"
            )
        if tokenizer.vocab_size != meta.vocab_size:
            raise DataError(
                f"{tok_path} has {tokenizer.vocab_size} tokens but the model in {model_dir} "
                f"has {meta.vocab_size}"
            )

        weights = model_dir / MODEL_WEIGHTS
        state = load_model_weights(model_dir)
        model = Transformer(meta.config, meta.vocab_size)
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0]
            raise DataError(f"{weights} does not fit {meta.path}'s model_config: {first}") from None

        dev = select_device(device, key="translate.device")
        prec = select_precision(precision, dev.type, key="translate.precision")
        model = model.to(device=dev).eval()  # float32: see above
        return cls(model, tokenizer, dev, meta.config.max_positions, prec)

    # -- translating

    def translate(
        self,
        lines: list[str],
        cfg: TranslateConfig,
        progress: bool | None = None,
        desc: str = "translate",
    ) -> list[str]:
        """One detokenized translation per line of ``lines``, in order (the best hypothesis).

        ``cfg``: beam_size, search_rules, length_penalty, max_len_a/b, coverage_penalty,
        max_tokens (its
        device and precision were fixed by :meth:`load`). ``progress``: a tqdm bar on
        stderr (None: only for >= 200 lines).
        """
        nbest = self.translate_nbest(lines, cfg, nbest=1, progress=progress, desc=desc)
        return [hyps[0].text if hyps else "" for hyps in nbest]

    def translate_nbest(
        self,
        lines: list[str],
        cfg: TranslateConfig,
        nbest: int | None = None,
        progress: bool | None = None,
        desc: str = "translate",
    ) -> list[list[Translation]]:
        """The ``nbest`` (default ``cfg.nbest``) best translations of each line, best first,
        with their scores; an empty line gives ``[Translation("", 0.0, [])]``."""
        nbest = cfg.nbest if nbest is None else nbest
        hyps = self.hypotheses(lines, cfg, nbest, progress, desc)
        out = []
        for line, hs in zip(lines, hyps, strict=True):
            if not line.strip():
                out.append([Translation("", 0.0, [])])
            else:
                out.append([Translation(self._text(h.tokens), h.score, h.tokens) for h in hs])
        return out

    def autocast(self):
        """The context decoding runs in: ``torch.autocast`` for fp16/bf16, else nothing."""
        return self.precision.autocast_context() if self.precision else nullcontext()

    def _text(self, tokens: list[int]) -> str:
        """Detokenized text of output ids, on one line."""
        return one_line(self.tokenizer.decode(tokens))

    def hypotheses(
        self,
        lines: list[str],
        cfg: TranslateConfig,
        nbest: int = 1,
        progress: bool | None = None,
        desc: str = "translate",
    ) -> list[list[Hypothesis]]:
        """Search results (token ids and scores) per line; ``[]`` for empty lines."""
        from tqdm import tqdm

        check_nbest(nbest, cfg.beam_size)  # cfg checked itself (TranslateConfig)
        vocab = getattr(self.tokenizer, "vocab_size", None)
        if vocab is not None and cfg.beam_size > vocab:
            raise ConfigError(
                f"beam_size={cfg.beam_size} is more than the model's {vocab} tokens: set "
                f"translate.beam_size (--beam-size) to at most {vocab} (the paper uses 4)"
            )
        results: list[list[Hypothesis]] = [[] for _ in lines]
        todo = [i for i, line in enumerate(lines) if line.strip()]
        if not todo:
            return results
        ids = self.tokenizer.encode_batch([lines[i] for i in todo])
        limit = math.inf if self.max_positions is None else self.max_positions - 1
        n_cut = sum(len(x) > limit for x in ids)
        if n_cut:
            warnings.warn(
                f"{n_cut} source line(s) longer than model.max_positions-1={limit} BPE tokens "
                f"were cut to fit",
                stacklevel=2,
            )
        src = [x[: int(min(len(x), limit))] + [EOS] for x in ids]
        max_len = [int(min(math.floor(cfg.max_len_a * len(x) + cfg.max_len_b), limit)) for x in ids]
        order = sorted(range(len(src)), key=lambda j: len(src[j]), reverse=True)
        show = len(todo) >= PROGRESS_MIN_LINES if progress is None else progress
        bar = tqdm(total=len(todo), desc=desc, unit="sent", disable=not show, file=sys.stderr)
        with bar:
            for batch in _token_batches(order, [len(s) for s in src], cfg.max_tokens):
                try:
                    found = self.search(
                        [src[j] for j in batch], [max_len[j] for j in batch], cfg, nbest
                    )
                except (RuntimeError, MemoryError) as e:
                    if not _out_of_memory(e):
                        raise
                    raise ConfigError(
                        f"out of memory decoding {len(batch)} sentence(s) with beam_size="
                        f"{cfg.beam_size}: lower translate.beam_size (--beam-size) or "
                        f"translate.max_tokens={cfg.max_tokens}"
                    ) from None
                for j, hyps in zip(batch, found, strict=True):
                    results[todo[j]] = hyps
                bar.update(len(batch))
        return results

    def search(
        self, src: list[list[int]], max_len: list[int], cfg: TranslateConfig, nbest: int
    ) -> list[list[Hypothesis]]:
        """Beam search on one batch: ``src`` token ids ending in ``</s>`` (longest first),
        ``max_len`` output tokens before ``</s>`` per sentence -> ``nbest`` hypotheses each."""
        import torch

        from aiayn.decode.search import search

        width = len(src[0])  # longest first
        rows = [s + [PAD] * (width - len(s)) for s in src]
        src_t = torch.tensor(rows, dtype=torch.long, device=self.device)  # (n, S)
        max_t = torch.tensor(max_len, device=self.device)  # (n,)
        with self.autocast():
            return search(
                self.model,
                src_t,
                max_t,
                beam_size=cfg.beam_size,
                alpha=cfg.length_penalty,
                beta=cfg.coverage_penalty,
                nbest=nbest,
                rules=cfg.search_rules,
            )


def _out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` is an allocation failure (CUDA or CPU allocator, or Python's)."""
    import torch

    text = str(e)
    return (
        isinstance(e, MemoryError | torch.OutOfMemoryError)
        or "can't allocate memory" in text
        or "out of memory" in text.lower()
    )


def _token_batches(order: list[int], lengths: list[int], max_tokens: int) -> list[list[int]]:
    """Consecutive runs of ``order`` (sorted by length, longest first) whose padded size
    ``len(batch) * longest`` is at most ``max_tokens`` (a single longer item is its own)."""
    batches: list[list[int]] = []
    cur: list[int] = []
    for j in order:
        longest = lengths[cur[0]] if cur else lengths[j]
        if cur and (len(cur) + 1) * longest > max_tokens:
            batches.append(cur)
            cur = []
        cur.append(j)
    if cur:
        batches.append(cur)
    return batches


def translate_splits(
    cfg: TranslateConfig, model_dir: Path, sources: dict[str, Path], out: Path
) -> dict[str, int]:
    """The ``translate`` stage: ``out/<split>.de`` for each ``sources[split]``, atomically.

    Returns the line count per split (equal to the source's).
    """
    from aiayn import paths
    from aiayn.fsio import atomic_dir, require_inputs

    require_inputs(*sources.values(), stage="clean")
    translator = Translator.load(model_dir, device=cfg.device, precision=cfg.precision)
    print(translator.precision.describe(), file=sys.stderr, flush=True)
    counts = {}
    with atomic_dir(out) as tmp:
        for split, source in sources.items():
            text = translator.translate(read_text_lines(source), cfg, progress=True, desc=split)
            with open(paths.translation(split, tmp), "w", encoding="utf-8", newline="\n") as f:
                f.writelines(t + "\n" for t in text)
            counts[split] = len(text)
    return counts
