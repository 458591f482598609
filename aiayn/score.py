"""Scoring: sacreBLEU, chrF and the paper-comparable tokenized BLEU (``bleu_tok``).

The paper's 27.3 / 28.4 BLEU are *tokenized* scores on compound-split German, computed by
tensor2tensor's ``get_ende_bleu.sh``. :func:`bleu_tok` reproduces that pipeline with
sacremoses (the Moses steps) and sacrebleu (the counting), on hypothesis and reference alike:

1. Moses ``replace-unicode-punctuation.perl`` (only the unicode-punctuation table: *not*
   ``normalize-punctuation.perl``): ``MosesPunctNormalizer.replace_unicode_punct``;
2. Moses ``tokenizer.perl -l de`` with its default escaping (``&`` -> ``&amp;`` ...), no
   aggressive dash splitting: ``MosesTokenizer("de").tokenize(escape=True)``;
3. the compound split ``s{(\\S)-(\\S)}{$1 ##AT##-##AT## $2}g`` (:func:`split_compounds`);
4. ``multi-bleu.perl``: corpus BLEU on whitespace tokens, cased, no smoothing
   (sacrebleu with ``tokenize="none"``, ``smooth_method="none"``).

``bleu_tok_t2t_ref`` is the same count against the reference tensor2tensor's authors scored
the paper with, which differs from the official one in its quotes: every unicode double quote
(``„ “ ” ‟ « »``) of the official newstest2014 reference made an ASCII ``"`` before the Moses
tokenizer, which escapes it to ``&quot;``, and no replace-unicode-punctuation on it (the
hypothesis goes through steps 1-4 as above, as get_ende_bleu.sh does). Martin Popel's account
in tensorflow/tensor2tensor issue 317 (2018-04-12): "convert all unicode quotes including „
to ", which will be converted to &quot; by tokenizer.perl ... Or download the tweaked
reference from gs://tensor2tensor-checkpoints/transformer_ende_test/newstest2014.tok.de";
replace-unicode-punctuation.perl alone leaves the German low quote ``„`` as it is. This is
the figure comparable with Table 2 (27.3 base, 28.4 big); ``bleu_tok`` treats both sides
alike. See README, "Comparing with the paper's BLEU".

sacreBLEU (the shareable score, 13a and cased by default) runs on the detokenized text as
it is. Metric names read well in ``dvc metrics diff``: ``test.sacrebleu``, ``test.bleu_tok``,
``test.chrf``, ``test.length_ratio``, ``test.signature`` ...
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from aiayn.config import ScoreConfig
from aiayn.errors import ConfigError, DataError

# tensor2tensor get_ende_bleu.sh: perl -ple 's{(\S)-(\S)}{$1 ##AT##-##AT## $2}g'
_COMPOUND = re.compile(r"(\S)-(\S)")

BLEU_TOK_SIGNATURE = (
    "t2t-get_ende_bleu|replace-unicode-punct|moses-tok:de|escape:yes|atat|"
    "tok:none|case:mixed|smooth:none"
)
BLEU_TOK_T2T_REF_SIGNATURE = (
    "t2t-get_ende_bleu|hyp:replace-unicode-punct|ref:unicode-double-quotes-to-ascii|"
    "moses-tok:de|escape:yes|atat|tok:none|case:mixed|smooth:none"
)

# Unicode double quotes, made ASCII in tensor2tensor's tweaked newstest2014 reference.
_T2T_REF_QUOTES = str.maketrans(dict.fromkeys("\u201e\u201c\u201d\u201f\u00ab\u00bb", '"'))


def read_lines(path: str | Path) -> list[str]:
    """Lines of a UTF-8 file, split on ``\\n`` only, trailing whitespace stripped.

    Reads like the ``sacrebleu`` command does, so scores agree with it byte for byte.
    """
    from aiayn.fsio import read_lines as read_text_lines

    return [line.rstrip() for line in read_text_lines(path)]


def read_pair(hyp: str | Path, ref: str | Path) -> tuple[list[str], list[str]]:
    """Hypothesis and reference lines; a :class:`DataError` if their line counts differ."""
    hyps, refs = read_lines(hyp), read_lines(ref)
    if len(hyps) != len(refs):
        raise DataError(
            f"line counts differ: {hyp} has {len(hyps)} lines, {ref} has {len(refs)} lines"
        )
    if not hyps:
        raise DataError(f"{hyp} and {ref} are empty: nothing to score (give one line per segment)")
    return hyps, refs


def split_compounds(line: str) -> str:
    """The ``##AT##`` compound split of tensor2tensor's get_ende_bleu.sh.

    ``"E-Mail-Konto"`` -> ``"E ##AT##-##AT## Mail ##AT##-##AT## Konto"``. Like Perl's
    ``s///g``, matches do not overlap: in ``"A-B-Test"`` the first match consumes the ``B``,
    so the result is ``"A ##AT##-##AT## B-Test"``, exactly as the published scores did it.
    """
    return _COMPOUND.sub(r"\1 ##AT##-##AT## \2", line)


def tokenize_for_bleu_tok(lines: list[str], *, t2t_reference: bool = False) -> list[str]:
    """Steps 1-3 of get_ende_bleu.sh on each line (see the module docstring).

    ``t2t_reference``: instead of step 1, make every unicode double quote ASCII, as in the
    reference tensor2tensor scored against."""
    from sacremoses import MosesPunctNormalizer, MosesTokenizer

    punct = MosesPunctNormalizer(lang="de")
    tok = MosesTokenizer(lang="de")
    out = []
    for line in lines:
        if t2t_reference:
            line = line.translate(_T2T_REF_QUOTES)
        else:
            line = punct.replace_unicode_punct(line)
        line = tok.tokenize(line, escape=True, return_str=True, aggressive_dash_splits=False)
        out.append(split_compounds(line))
    return out


def _multi_bleu(hyps_tok: list[str], refs_tok: list[str]) -> float:
    """multi-bleu.perl on whitespace tokens: cased, no smoothing."""
    from sacrebleu.metrics import BLEU

    metric = BLEU(tokenize="none", smooth_method="none", force=True)
    return metric.corpus_score(hyps_tok, [refs_tok]).score


def bleu_tok(hyps: list[str], refs: list[str]) -> float:
    """Tokenized, compound-split corpus BLEU, both sides through get_ende_bleu.sh's steps."""
    return _multi_bleu(tokenize_for_bleu_tok(hyps), tokenize_for_bleu_tok(refs))


def bleu_tok_t2t_ref(hyps: list[str], refs: list[str]) -> float:
    """:func:`bleu_tok` against the reference as tensor2tensor tweaked it (quotes made ASCII):
    the figure comparable with the paper's Table 2 (module docstring)."""
    refs_tok = tokenize_for_bleu_tok(refs, t2t_reference=True)
    return _multi_bleu(tokenize_for_bleu_tok(hyps), refs_tok)


def score_lines(hyps: list[str], refs: list[str], cfg: ScoreConfig) -> dict:
    """All metrics for aligned hypothesis/reference lines.

    Returns ``{"sacrebleu", "bleu_tok", "bleu_tok_t2t_ref", "chrf", "length_ratio",
    "signature", "chrf_signature", "bleu_tok_signature", "bleu_tok_t2t_ref_signature",
    "lines"}``; BLEU and chrF in percent (2 decimals),
    ``length_ratio`` = hypothesis / reference length in sacreBLEU's tokens.
    """
    import sacrebleu
    from sacrebleu.metrics import BLEU, CHRF

    if len(hyps) != len(refs):
        raise DataError(f"line counts differ: {len(hyps)} hypotheses, {len(refs)} references")
    if not hyps:
        raise DataError("nothing to score: no lines")
    bleu = BLEU(tokenize=cfg.tokenize, lowercase=cfg.lowercase)
    b = bleu.corpus_score(hyps, [refs])
    chrf = CHRF(lowercase=cfg.lowercase)
    c = chrf.corpus_score(hyps, [refs])
    return {
        "sacrebleu": round(b.score, 2),
        "bleu_tok": round(bleu_tok(hyps, refs), 2),
        "bleu_tok_t2t_ref": round(bleu_tok_t2t_ref(hyps, refs), 2),
        "chrf": round(c.score, 2),
        "length_ratio": round(b.sys_len / b.ref_len, 4) if b.ref_len else 0.0,
        "lines": len(hyps),
        "signature": bleu.get_signature().format(),
        "chrf_signature": chrf.get_signature().format(),
        "bleu_tok_signature": f"{BLEU_TOK_SIGNATURE}|version:{sacrebleu.__version__}",
        "bleu_tok_t2t_ref_signature": (
            f"{BLEU_TOK_T2T_REF_SIGNATURE}|version:{sacrebleu.__version__}"
        ),
    }


def score_files(hyp: str | Path, ref: str | Path, cfg: ScoreConfig) -> dict:
    """:func:`score_lines` on two files; a clear error if their line counts differ."""
    hyps, refs = read_pair(hyp, ref)
    return score_lines(hyps, refs, cfg)


def score_splits(cfg: ScoreConfig, pairs: dict[str, tuple[Path, Path]], out: Path) -> dict:
    """Score each split's (hypothesis, reference) pair and write ``{split: metrics}`` to ``out``.

    All inputs are read and checked before anything is written; ``out`` is written atomically.
    """
    from aiayn.fsio import atomic_file, require_inputs

    for hyp, ref in pairs.values():
        require_inputs(hyp, stage="translate")
        require_inputs(ref, stage="download")
    metrics = {split: score_files(hyp, ref, cfg) for split, (hyp, ref) in pairs.items()}
    with atomic_file(out) as f:
        json.dump(metrics, f, indent=2, ensure_ascii=False)
        f.write("\n")
    for split, m in metrics.items():
        print(summary_line(split, m), file=sys.stderr)
    return metrics


def summary_line(split: str, m: dict) -> str:
    """One split's metrics (a :func:`score_lines` dict) as one human-readable line."""
    return (
        f"{split}: sacreBLEU {m['sacrebleu']:.2f}  bleu_tok {m['bleu_tok']:.2f}  "
        + (f"bleu_tok_t2t_ref {m['bleu_tok_t2t_ref']:.2f}  " if "bleu_tok_t2t_ref" in m else "")
        + f"chrF {m['chrf']:.2f}  length ratio {m['length_ratio']:.3f}  ({m['lines']:,} lines)"
    )


def print_summary(path: str | Path = "reports/metrics.json") -> None:
    """Print each split of a metrics file written by :func:`score_splits`, a line each
    (``make demo`` ends with this; ``dvc metrics show`` also prints the signatures)."""
    from aiayn.fsio import require_inputs

    require_inputs(Path(path), stage="score")
    for split, m in json.loads(Path(path).read_text(encoding="utf-8")).items():
        print(summary_line(split, m))


def score_command(
    hyp: Annotated[Path, typer.Argument(help="system output, one detokenized line per segment")],
    ref: Annotated[Path, typer.Argument(help="reference, line-aligned with HYP")],
    tokenize: Annotated[
        str, typer.Option(help="sacreBLEU tokenizer: 13a, intl or none")
    ] = ScoreConfig.tokenize,
    lowercase: Annotated[bool, typer.Option(help="case-insensitive sacreBLEU and chrF")] = False,
) -> None:
    """Score HYP against REF: sacreBLEU, chrF, length ratio and the paper's bleu_tok, as JSON."""
    from typing import get_args, get_type_hints

    choices = get_args(get_type_hints(ScoreConfig)["tokenize"])
    if tokenize not in choices:
        raise ConfigError(f"--tokenize must be one of {', '.join(choices)}; got {tokenize!r}")
    cfg = ScoreConfig(tokenize=tokenize, lowercase=lowercase)
    print(json.dumps(score_files(hyp, ref, cfg), indent=2, ensure_ascii=False))
