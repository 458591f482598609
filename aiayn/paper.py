"""The paper's Tables 2 and 3 beside this project's runs.

- :data:`TABLE2`, :data:`BASE`, :data:`BIG`, :data:`ROWS`: the values of Vaswani et al.
  (2017), arXiv 1706.03762 v7, Tables 2 and 3, transcribed (Table 3's rows A-E with the
  setting each changes in the paper's terms: N, d_model, d_ff, h, d_k, d_v, P_drop, eps_ls,
  positional).
- :func:`settings`: a row as ``params.yaml`` keys (absolute, or scaled to another base).
- :class:`RunResult`: what a run measured (dev perplexity, dev and test BLEU, training
  tokens and FLOPs) with its configuration; :func:`run_result_from_files` reads the
  pipeline's files, :func:`run_results_from_exp_show` the JSON of ``dvc exp show --json``.
- :func:`render_run` (``reports/paper.md``, written by the score stage) and
  :func:`render_grid` (``aiayn table3 report``): Markdown tables with the paper's values
  beside ours.

No torch here: the score stage and the ``aiayn`` command import it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiayn.config import ModelConfig
from aiayn.errors import AiaynError, DataError

# ----------------------------------------------------------------------------- the paper

# Table 2, English-German (newstest2014 BLEU; training cost in FLOPs, which the paper
# estimates as training time x number of GPUs x sustained single-precision FLOP/s per GPU,
# 9.5 TFLOPS for a P100).
TABLE2 = {
    "base": {"bleu": 27.3, "flops": 3.3e18},
    "big": {"bleu": 28.4, "flops": 2.3e19},
}

# Table 3's columns, in the paper's terms and order.
TERMS = ("N", "d_model", "d_ff", "h", "d_k", "d_v", "P_drop", "eps_ls", "positional")
SIZES = ("N", "d_model", "d_ff", "h", "d_k", "d_v")  # scaled by --relative


@dataclass(frozen=True)
class PaperRow:
    """One line of Table 3: what it changes from the base model, and what the paper got
    (perplexity per wordpiece and BLEU on newstest2013, parameters in millions; None where
    the paper leaves the cell empty)."""

    id: str
    change: dict[str, Any]
    ppl: float
    bleu: float
    params_m: float | None = None
    steps: int = 100_000

    @property
    def group(self) -> str:
        return self.id[0] if self.id[0] in "ABCDE" else self.id

    def describe(self) -> str:
        """The change in the paper's words, e.g. ``h=1, d_k=512, d_v=512``."""
        if not self.change:
            return "(base)" if self.id == "base" else ""
        if self.change.get("positional") == "learned":
            return "positional embedding instead of sinusoids"
        return ", ".join(f"{k}={v}" for k, v in self.change.items())


BASE = PaperRow(
    "base",
    {},
    ppl=4.92,
    bleu=25.8,
    params_m=65,
)
BASE_TERMS: dict[str, Any] = {
    "N": 6,
    "d_model": 512,
    "d_ff": 2048,
    "h": 8,
    "d_k": 64,
    "d_v": 64,
    "P_drop": 0.1,
    "eps_ls": 0.1,
    "positional": "sinusoidal",
}
BIG = PaperRow(
    "big",
    {"d_model": 1024, "d_ff": 4096, "h": 16, "P_drop": 0.3},
    ppl=4.33,
    bleu=26.4,
    params_m=213,
    steps=300_000,
)

ROWS: tuple[PaperRow, ...] = (
    PaperRow("A1", {"h": 1, "d_k": 512, "d_v": 512}, 5.29, 24.9),
    PaperRow("A2", {"h": 4, "d_k": 128, "d_v": 128}, 5.00, 25.5),
    PaperRow("A3", {"h": 16, "d_k": 32, "d_v": 32}, 4.91, 25.8),
    PaperRow("A4", {"h": 32, "d_k": 16, "d_v": 16}, 5.01, 25.4),
    PaperRow("B1", {"d_k": 16}, 5.16, 25.1, 58),
    PaperRow("B2", {"d_k": 32}, 5.01, 25.4, 60),
    PaperRow("C1", {"N": 2}, 6.11, 23.7, 36),
    PaperRow("C2", {"N": 4}, 5.19, 25.3, 50),
    PaperRow("C3", {"N": 8}, 4.88, 25.5, 80),
    PaperRow("C4", {"d_model": 256, "d_k": 32, "d_v": 32}, 5.75, 24.5, 28),
    PaperRow("C5", {"d_model": 1024, "d_k": 128, "d_v": 128}, 4.66, 26.0, 168),
    PaperRow("C6", {"d_ff": 1024}, 5.12, 25.4, 53),
    PaperRow("C7", {"d_ff": 4096}, 4.75, 26.2, 90),
    PaperRow("D1", {"P_drop": 0.0}, 5.77, 24.6),
    PaperRow("D2", {"P_drop": 0.2}, 4.95, 25.5),
    PaperRow("D3", {"eps_ls": 0.0}, 4.67, 25.3),
    PaperRow("D4", {"eps_ls": 0.2}, 5.47, 25.7),
    PaperRow("E", {"positional": "learned"}, 4.92, 25.7),
)
ROW_BY_ID = {r.id: r for r in (BASE, *ROWS, BIG)}

PPL_NOTE = (
    "The paper's perplexity is per wordpiece of its own byte-pair encoding and ours per "
    "token of this run's BPE, so only the direction of a change compares, not the values."
)


def paper_terms(row: PaperRow) -> dict[str, Any]:
    """The full configuration of a Table 3 row in the paper's terms (base + its change).
    In rows A and C the paper changes d_k and d_v with h or d_model; elsewhere they stay 64."""
    return {**BASE_TERMS, **row.change}


# ----------------------------------------------------------------------------- params keys

# The paper's terms as params.yaml keys (N sets both stacks).
KEYS: dict[str, tuple[str, ...]] = {
    "N": ("model.encoder_layers", "model.decoder_layers"),
    "d_model": ("model.d_model",),
    "d_ff": ("model.d_ff",),
    "h": ("model.n_heads",),
    "d_k": ("model.d_k",),
    "d_v": ("model.d_v",),
    "P_drop": ("model.dropout",),
    "eps_ls": ("train.label_smoothing",),
    "positional": ("model.positional",),
}


def terms_of(model: ModelConfig, label_smoothing: float) -> dict[str, Any]:
    """A run's configuration in the paper's terms (N as ``"e/d"`` when the stacks differ)."""
    d_k, d_v = model.head_dims
    enc, dec = model.encoder_layers, model.decoder_layers
    return {
        "N": enc if enc == dec else f"{enc}/{dec}",
        "d_model": model.d_model,
        "d_ff": model.d_ff,
        "h": model.n_heads,
        "d_k": d_k,
        "d_v": d_v,
        "P_drop": model.dropout,
        "eps_ls": label_smoothing,
        "positional": model.positional,
    }


def scaled_change(row: PaperRow, base: dict[str, Any]) -> dict[str, Any]:
    """``row``'s change with every size (N, d_model, d_ff, h, d_k, d_v) scaled by
    ``base[size] / paper base[size]``: the row relative to another base model. Dropout,
    label smoothing and positions stay absolute. A size that does not come out a whole
    number >= 1 is an :class:`AiaynError` naming the row and the base value."""
    out = {}
    for term, value in row.change.items():
        if term not in SIZES:
            out[term] = value
            continue
        if not isinstance(base[term], int):
            raise AiaynError(f"row {row.id} scales {term}, but the base has {term}={base[term]}")
        scaled = value * base[term] / BASE_TERMS[term]
        if scaled < 1 or scaled != int(scaled):
            raise AiaynError(
                f"row {row.id} ({row.describe()}) scaled to the base's {term}={base[term]} "
                f"gives {term}={scaled:g}, not a whole number >= 1: choose a base whose "
                f"{term} is a multiple of {BASE_TERMS[term] // math.gcd(value, BASE_TERMS[term])}"
            )
        out[term] = int(scaled)
    return out


def settings(change: dict[str, Any]) -> dict[str, Any]:
    """A change in the paper's terms as ``{params.yaml dotted key: value}``."""
    return {key: value for term, value in change.items() for key in KEYS[term]}


def select_rows(ids: Iterable[str]) -> list[PaperRow]:
    """Rows by id (``A1``) or group (``A``), in table order; none given: all of A-E."""
    ids = [i.strip().upper() for i in ids if i.strip()]
    if not ids:
        return list(ROWS)
    known = {r.id for r in ROWS} | {r.group for r in ROWS}
    for i in ids:
        if i not in known:
            raise AiaynError(
                f"unknown Table 3 row {i!r}; choose from {', '.join(r.id for r in ROWS)} "
                "or a group A, B, C, D, E"
            )
    return [r for r in ROWS if r.id in ids or r.group in ids]


# ----------------------------------------------------------------------------- results


@dataclass
class RunResult:
    """One run's configuration and measurements (None: not measured)."""

    name: str
    model: ModelConfig
    vocab_size: int
    label_smoothing: float
    source: str = "demo"
    steps: int | None = None
    dev_ppl: float | None = None
    dev_bleu: float | None = None
    test_bleu: float | None = None
    tokens: float | None = None
    flops: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def terms(self) -> dict[str, Any]:
        return terms_of(self.model, self.label_smoothing)

    @property
    def params_m(self) -> float:
        from aiayn.model_info import parameter_breakdown

        return parameter_breakdown(self.model, self.vocab_size)["total"] / 1e6


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _read_json(path: Path, stage: str) -> dict:
    from aiayn.fsio import require_inputs

    require_inputs(path, stage=stage)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: cannot be read as JSON: {e}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    return data


def _model_config(cfg: Any, where: str) -> ModelConfig:
    if not isinstance(cfg, dict):
        raise DataError(f"{where}: no model configuration")
    try:
        return ModelConfig(**cfg)
    except TypeError as e:
        raise DataError(f"{where}: bad model configuration: {e}") from None


def table2_bleu(scores: dict) -> float | None:
    """The test BLEU that compares with Table 2: ``bleu_tok_t2t_ref`` (against the reference
    as the paper's authors tweaked it), else ``bleu_tok`` (metrics written before it)."""
    value = _get(scores, "test", "bleu_tok_t2t_ref")
    return value if value is not None else _get(scores, "test", "bleu_tok")


def measured(train: dict, scores: dict) -> dict[str, Any]:
    """RunResult's measurements from the train stage's dvclive ``metrics.json`` and the
    score stage's ``metrics.json`` (both as dicts; a missing value is None)."""
    return {
        "steps": _get(train, "step"),
        "dev_ppl": _get(train, "dev", "ppl"),
        "dev_bleu": _get(scores, "dev", "bleu_tok"),
        "test_bleu": table2_bleu(scores),
        "tokens": _get(train, "train", "tokens"),
        "flops": _get(train, "train", "flops"),
    }


def run_result_from_files(
    name: str,
    model_json: Path,
    train_metrics: Path | None,
    metrics: Path,
    label_smoothing: float,
    source: str,
) -> RunResult:
    """The current run from the pipeline's files: ``data/model/model.json`` (model and
    vocabulary), ``reports/train/metrics.json`` (dev perplexity, tokens, FLOPs, step) and
    ``reports/metrics.json`` (BLEU). ``train_metrics`` None: training logged no metrics
    (dvclive missing, as in ``bench/gpu.sh``), so those values stay blank."""
    meta = _read_json(model_json, "average")
    train = _read_json(train_metrics, "train") if train_metrics is not None else {}
    scores = _read_json(metrics, "score")
    vocab = meta.get("vocab_size")
    if not isinstance(vocab, int):
        raise DataError(f"{model_json}: no vocab_size")
    return RunResult(
        name=name,
        model=_model_config(meta.get("model_config"), str(model_json)),
        vocab_size=vocab,
        label_smoothing=label_smoothing,
        source=source,
        **measured(train, scores),
        extra={"averaged": meta.get("steps")},
    )


def exp_show_revisions(rows: Any) -> list[dict]:
    """Every revision in ``dvc exp show --json`` output (baselines and their experiments),
    each a dict with ``name``, ``rev`` and ``data`` (params and metrics), in output order."""
    if not isinstance(rows, list):
        raise DataError("dvc exp show --json: expected a list of revisions")
    found = []
    for row in rows:
        if not isinstance(row, dict):
            continue
        found.append(row)
        for exp in row.get("experiments") or []:
            found += [r for r in (exp or {}).get("revs") or [] if isinstance(r, dict)]
    return found


def run_result_from_exp(rev: dict) -> RunResult | None:
    """A revision of ``dvc exp show --json`` as a RunResult; None without params."""
    data = rev.get("data") or {}
    params = _get(data, "params", "params.yaml", "data")
    if not isinstance(params, dict) or not isinstance(params.get("model"), dict):
        return None
    name = rev.get("name") or rev.get("rev") or "?"
    metrics = data.get("metrics") or {}
    train = _get(metrics, "reports/train/metrics.json", "data") or {}
    scores = _get(metrics, "reports/metrics.json", "data") or {}
    return RunResult(
        name=str(name),
        model=_model_config(params["model"], f"experiment {name}"),
        vocab_size=int(_get(params, "tokenizer", "vocab_size") or 0),
        label_smoothing=float(_get(params, "train", "label_smoothing") or 0.0),
        source=str(_get(params, "data", "source") or "?"),
        **measured(train, scores),
        extra={"rev": rev.get("rev")},
    )


def run_results_from_exp_show(rows: Any, prefix: str) -> dict[str, RunResult]:
    """Row id -> result for the experiments named ``<prefix>-<row id>`` (``base`` too);
    the first (newest) of two with one name wins."""
    out: dict[str, RunResult] = {}
    for rev in exp_show_revisions(rows):
        name = rev.get("name")
        if not isinstance(name, str) or not name.startswith(prefix + "-"):
            continue
        row_id = name[len(prefix) + 1 :]
        if row_id in ROW_BY_ID and row_id not in out:
            result = run_result_from_exp(rev)
            if result is not None:
                out[row_id] = result
    return out


# ----------------------------------------------------------------------------- rendering


def _num(v: Any, digits: int) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{digits}f}"


def _sci(v: float | None) -> str:
    if v is None:
        return "–"
    exp = int(math.floor(math.log10(v))) if v > 0 else 0
    return f"{v / 10**exp:.1f}·10^{exp}"


def _steps(n: int | None) -> str:
    if n is None:
        return "–"
    return f"{n // 1000}K" if n >= 1000 and n % 1000 == 0 else str(n)


def _term(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _delta(v: float | None, base: float | None, digits: int) -> str:
    if v is None or base is None:
        return "–"
    return f"{v - base:+.{digits}f}"


def matching_row(terms: dict[str, Any]) -> PaperRow | None:
    """The Table 3 row (base, A1 ... E, big) whose configuration ``terms`` equals."""
    for row in (BASE, *ROWS, BIG):
        if paper_terms(row) == terms:
            return row
    return None


def differences(terms: dict[str, Any], row: PaperRow = BASE) -> str:
    """``d_model 192 (paper 512), ...``: where ``terms`` differs from a paper row."""
    want = paper_terms(row)
    diffs = [
        f"{k} {_term(terms[k])} (paper {_term(want[k])})" for k in TERMS if terms[k] != want[k]
    ]
    return ", ".join(diffs)


TABLE3_COLUMNS = ["row", "paper's change", *TERMS[:-1], "steps"] + [
    "PPL (dev)",
    "paper",
    "BLEU (dev)",
    "paper",
    "params ×10^6",
    "paper",
]
DELTA_COLUMNS = ["ΔPPL", "paper", "ΔBLEU", "paper"]


def md_line(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def md_header(columns: list[str]) -> list[str]:
    names = [{"P_drop": "P_drop", "eps_ls": "ε_ls"}.get(c, c) for c in columns]
    return [md_line(names), md_line("---" for _ in columns)]


def table3_cells(label: str, paper: PaperRow | None, run: RunResult | None) -> list[str]:
    """One line of our Table 3: the run's configuration and results, the paper's beside."""
    t = run.terms if run is not None else {}
    cells = [label, paper.describe() if paper else ""]
    cells += [_term(t[k]) if k in t else "–" for k in TERMS[:-1]]
    cells.append(_steps(run.steps) if run else "–")
    cells += [
        _num(run.dev_ppl, 2) if run else "not run",
        _num(paper.ppl, 2) if paper else "",
        _num(run.dev_bleu, 1) if run else "–",
        _num(paper.bleu, 1) if paper else "",
        _num(run.params_m, 2) if run and run.vocab_size else "–",
        _num(paper.params_m, 0) if paper and paper.params_m else "",
    ]
    return cells


def paper_table3_line(row: PaperRow) -> str:
    """A line holding only the paper's configuration and values (reference rows)."""
    t = paper_terms(row)
    cells = [f"paper {row.id}", row.describe()] + [_term(t[k]) for k in TERMS[:-1]]
    cells += [_steps(row.steps), "", _num(row.ppl, 2), "", _num(row.bleu, 1), ""]
    cells.append(_num(row.params_m, 0) if row.params_m else "")
    return md_line(cells)


def table2(run: RunResult, label: str = "this run") -> list[str]:
    """Table 2 (EN-DE) with the paper's base and big and ``run``."""
    corpus = "newstest2014" if run.source == "wmt14" else f"{run.source} test set"
    return [
        "| model | BLEU EN-DE | training cost (FLOPs) |",
        "|---|---|---|",
        f"| Transformer (base model), paper | {TABLE2['base']['bleu']} | "
        f"{_sci(TABLE2['base']['flops'])} |",
        f"| Transformer (big), paper | {TABLE2['big']['bleu']} | {_sci(TABLE2['big']['flops'])} |",
        f"| {label} ({corpus}) | {_num(run.test_bleu, 1)} | {_sci(run.flops)} |",
    ]


def table2_notes(run: RunResult) -> list[str]:
    tokens = f"{run.tokens:,.0f}" if run.tokens is not None else "–"
    notes = [
        "BLEU is the paper-comparable tokenized, compound-split BLEU against the reference "
        "as the paper's authors tweaked it (`test.bleu_tok_t2t_ref`; README, Comparing with "
        "the paper's BLEU); Table 3's dev BLEU is `dev.bleu_tok`. The paper "
        "estimates its training cost as training time × GPUs × sustained FLOP/s (8 P100 at "
        "9.5 TFLOPS); ours is counted: the model's training FLOPs per target token "
        f"(`aiayn model-info`, at the data's mean sentence lengths) × {tokens} target tokens "
        "seen (`train.flops` in reports/train/metrics.json).",
    ]
    if run.source != "wmt14":
        notes.append(
            f"This run trained and was scored on the {run.source} corpus (`data.source: "
            f"{run.source}`), not WMT14: its BLEU does not compare with the paper's."
        )
    return notes


def render_run(run: RunResult) -> str:
    """``reports/paper.md`` for the current run: Table 2 and its line of Table 3."""
    row = matching_row(run.terms)
    lines = [
        "# This run beside the paper",
        "",
        "Vaswani et al. (2017), *Attention Is All You Need*, Tables 2 and 3; regenerated by "
        "the `score` stage.",
        "",
        "## Table 2: BLEU and training cost",
        "",
        *table2(run),
        "",
        *table2_notes(run),
        "",
        "## Table 3: dev perplexity, dev BLEU (newstest2013), parameters",
        "",
        *md_header(TABLE3_COLUMNS),
    ]
    label = "this run" if row is None else f"this run = {row.id}"
    lines.append(md_line(table3_cells(label, row, run)))
    lines += [paper_table3_line(r) for r in (BASE, BIG) if r is not row]
    lines += ["", PPL_NOTE]
    if row is None:
        lines.append(
            f"This configuration is no row of the paper's Table 3; it differs from the base "
            f"model in {differences(run.terms)}."
        )
    lines += [averaging_note(run.extra.get("averaged")), ""]
    return "\n".join(lines)


def averaging_note(steps: Any) -> str:
    """What the decoded model is, against the paper's Table 3 (single models); ``steps``:
    the averaged checkpoints' steps from model.json."""
    paper = "The paper's Table 3 decodes single models (no checkpoint averaging); "
    last = "Dev perplexity is that of the last checkpoint."
    if not isinstance(steps, list) or not steps:
        return paper + f"ours averages the last `average.last` checkpoints. {last}"
    if len(steps) == 1:
        return paper + f"so does this run (the checkpoint of step {steps[0]}). {last}"
    return paper + (
        f"this run averages {len(steps)} checkpoints (steps {steps[0]}-{steps[-1]}). {last}"
    )


def render_grid(results: dict[str, RunResult], prefix: str, source: str = "dvc exp show") -> str:
    """Table 3 (every row A-E, queued or not) and Table 2 for the grid's base, from
    experiments named ``<prefix>-<row id>``."""
    base = results.get("base")
    lines = [
        "# Table 3 as DVC experiments, beside the paper",
        "",
        f"Experiments `{prefix}-<row>` from `{source}`; each row changes the grid's base as "
        "the paper's row changes its base model. Δ: the change from the base row, ours and "
        "the paper's.",
        "",
        *md_header(TABLE3_COLUMNS + DELTA_COLUMNS),
    ]
    for row in (BASE, *ROWS):
        run = results.get(row.id)
        ours = run or RunResult("", ModelConfig(), 0, 0.0)
        cells = table3_cells("base" if row is BASE else f"({row.id})", row, run)
        cells += [
            _delta(ours.dev_ppl, base.dev_ppl if base else None, 2),
            _delta(row.ppl, BASE.ppl, 2),
            _delta(ours.dev_bleu, base.dev_bleu if base else None, 1),
            _delta(row.bleu, BASE.bleu, 1),
        ]
        lines.append(md_line(cells))
    lines += ["", PPL_NOTE]
    if base is not None:
        lines += ["", "## Table 2: the grid's base", "", *table2(base, "grid base")]
        lines += ["", *table2_notes(base)]
    lines.append("")
    return "\n".join(lines)


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    from aiayn.fsio import atomic_file

    with atomic_file(path) as f:
        f.write(text)
    return Path(path)
