"""``aiayn translate --engine ctranslate2``: the same translator, searching in CTranslate2.

:class:`Ctranslate2Translator` loads a folder written by ``aiayn export --to ctranslate2``
(``model.bin`` + vocabulary, ``tokenizer.json``, ``aiayn.json``) and reuses everything of
:class:`aiayn.decode.translator.Translator` except the search itself: the same BPE, the same
``</s>`` on every source, the same length-sorted batches of at most ``translate.max_tokens``
source tokens, the same empty-line and line-break handling. Each batch goes to
``ctranslate2.Translator.translate_batch`` as token strings, with:

- ``beam_size``, ``num_hypotheses`` = nbest, ``suppress_sequences`` ``<pad>`` and ``<s>``
  (aiayn never generates them);
- aiayn's length penalty, exactly: CTranslate2 divides a hypothesis' log-probability by
  ``|Y| ** alpha``, aiayn by GNMT's ``((5 + |Y|) / 6) ** alpha``. So CTranslate2 searches
  with ``length_penalty=0`` (plain log-probabilities, the same beam as aiayn's, whose
  candidates are ranked by log-probability too) and returns all ``beam_size`` finished
  hypotheses (``num_hypotheses = beam_size``: it searches until that many have finished, as
  aiayn does); they are then scored ``log P / ((5 + |Y|) / 6) ** alpha`` (|Y| with
  ``</s>``, :func:`aiayn.decode.penalties.length_penalty`) and the best ``nbest`` kept.
  Passing alpha to CTranslate2's own penalty instead would change which hypothesis wins
  wherever lengths differ (README, "Using a trained model", has both agreement rates);
- ``coverage_penalty`` goes to CTranslate2's own coverage penalty (not GNMT's);
- ``max_decoding_length``: CTranslate2 takes one per batch, so it gets the batch's largest
  ``max_len + 1`` (room for ``</s>``) and each output is then cut to its own ``max_len``;
  a hypothesis that reaches it ends without ``</s>`` (aiayn forces ``</s>`` there and counts
  its log-probability), so there the two may rank differently.

"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from aiayn.config import TranslateConfig
from aiayn.decode.search import Hypothesis
from aiayn.decode.translator import Translator
from aiayn.errors import ConfigError, DataError, MissingInputError
from aiayn.vocab import BOS, PAD, SPECIAL_TOKENS

SUPPRESS = (SPECIAL_TOKENS[PAD], SPECIAL_TOKENS[BOS])  # never generated, as in aiayn's search


def import_ctranslate2():
    """The ``ctranslate2`` module (the ``export`` extra), or a one-line ConfigError."""
    try:
        import ctranslate2
    except ImportError:
        raise ConfigError(
            'ctranslate2 is not installed: pip install -e ".[export]" (or pip install '
            "ctranslate2), then run the export again"
        ) from None
    return ctranslate2


class Ctranslate2Translator(Translator):
    """A CTranslate2 model with aiayn's tokenizer: ``translate(lines, cfg)`` as Translator."""

    def __init__(self, engine: Any, tokenizer: Any, device: str, max_positions: int | None):
        super().__init__(model=None, tokenizer=tokenizer, device="cpu", max_positions=max_positions)
        self.engine = engine
        self.engine_device = device

    @classmethod
    def load(  # type: ignore[override]
        cls, model_dir: str | os.PathLike, device: str = "auto", threads: int = 0
    ) -> Ctranslate2Translator:
        """The export in ``model_dir`` on ``device`` (auto: cuda when CTranslate2 sees a GPU);
        ``threads``: CPU threads per batch (0: CTranslate2's default)."""
        from aiayn.tokenizer import load_tokenizer

        ctranslate2 = import_ctranslate2()
        model_dir = Path(model_dir)
        for name in ("model.bin", "aiayn.json", "tokenizer.json"):
            if not (model_dir / name).is_file():
                raise MissingInputError(
                    f"{model_dir} is not an aiayn CTranslate2 export ({name} is missing): run "
                    f"`aiayn export --to ctranslate2 DIR` and pass --model-dir DIR"
                )
        meta_path = model_dir / "aiayn.json"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            max_positions = int(meta["model_config"]["max_positions"])
            want_sha = str(meta["tokenizer_sha256"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            raise DataError(f"{meta_path}: not an aiayn export record ({e})") from None
        tokenizer = load_tokenizer(model_dir / "tokenizer.json")
        if tokenizer.sha256 != want_sha:
            raise DataError(
                f"{model_dir / 'tokenizer.json'} is not the tokenizer {meta_path} names "
                f"(sha256 {tokenizer.sha256[:12]}, expected {want_sha[:12]}); export again"
            )
        if device == "auto":
            device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        if device not in ("cpu", "cuda"):
            raise ConfigError(f"--device must be auto, cpu or cuda; got {device!r}")
        try:
            engine = ctranslate2.Translator(str(model_dir), device=device, intra_threads=threads)
        except (RuntimeError, ValueError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise DataError(
                f"{model_dir}: CTranslate2 cannot load it on {device}: {first}"
            ) from None
        return cls(engine, tokenizer, device, max_positions)

    def search(
        self, src: list[list[int]], max_len: list[int], cfg: TranslateConfig, nbest: int
    ) -> list[list[Hypothesis]]:
        """One batch through ``translate_batch`` (see the module docstring)."""
        from aiayn.decode.penalties import length_penalty

        tok = self.tokenizer
        results = self.engine.translate_batch(
            [[tok.id_to_token(i) for i in s] for s in src],
            beam_size=cfg.beam_size,
            num_hypotheses=cfg.beam_size,
            length_penalty=0.0,
            coverage_penalty=cfg.coverage_penalty,
            max_decoding_length=max(max_len) + 1,
            max_input_length=0,
            suppress_sequences=[[t] for t in SUPPRESS],
            return_scores=True,
        )
        out = []
        for r, limit in zip(results, max_len, strict=True):
            hyps = []
            for tokens, logprob in zip(r.hypotheses, r.scores, strict=True):
                ids = [tok.token_to_id(t) for t in tokens][:limit]
                score = logprob / length_penalty(len(ids) + 1, cfg.length_penalty)
                hyps.append(Hypothesis(ids, float(score), float(logprob)))
            hyps.sort(key=lambda h: -h.score)  # stable: equal scores keep CTranslate2's order
            out.append(hyps[:nbest])
        return out
