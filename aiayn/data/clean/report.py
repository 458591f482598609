"""What the clean stage reports: counts per corpus (:class:`CorpusStats`), ``reports/data.json``
and the pandas table of ``reports/data.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiayn.config import CleanConfig
from aiayn.data.clean.filters import FILTER_HELP, FILTERS, ChunkResult

# Counts of lines strip_html changed: per side, and pairs with either side changed.
HTML_KEYS = ("en_lines", "de_lines", "pairs")

# ----------------------------------------------------------------------------- statistics


@dataclass
class CorpusStats:
    """Counts for one corpus (or the total)."""

    input: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FILTERS, 0))
    invalid_utf8: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("en_lines", "en_replacements", "de_lines", "de_replacements"), 0
        )
    )
    html: dict[str, int] = field(default_factory=lambda: dict.fromkeys(HTML_KEYS, 0))

    def add(self, r: ChunkResult) -> None:
        self.input += r.pairs
        for name, n in zip(FILTERS, r.dropped, strict=True):
            self.dropped[name] += n
        for key, n in zip(self.invalid_utf8, r.invalid, strict=True):
            self.invalid_utf8[key] += n
        for key, n in zip(HTML_KEYS, r.html, strict=True):
            self.html[key] += n

    def merge(self, other: CorpusStats) -> None:
        self.input += other.input
        self.kept += other.kept
        for k, v in other.dropped.items():
            self.dropped[k] += v
        for k, v in other.invalid_utf8.items():
            self.invalid_utf8[k] += v
        for k, v in other.html.items():
            self.html[k] += v

    def as_dict(self) -> dict:
        return {
            "input": self.input,
            "kept": self.kept,
            "dropped": dict(self.dropped),
            "dropped_total": sum(self.dropped.values()),
            "invalid_utf8": dict(self.invalid_utf8),
            "html": dict(self.html),
        }


# ----------------------------------------------------------------------------- reports


def build_report(stats: dict[str, CorpusStats], evals: dict[str, dict]) -> dict:
    total = CorpusStats()
    for st in stats.values():
        total.merge(st)
    return {
        "corpora": {name: st.as_dict() for name, st in stats.items()},
        "total": total.as_dict(),
        **evals,
    }


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.1f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _markdown_table(df) -> str:
    """A GitHub markdown table of a DataFrame (pandas' own needs the tabulate package)."""
    cols = [df.index.name or "", *map(str, df.columns)]
    out = ["| " + " | ".join(cols) + " |", "|---|" + "---:|" * (len(cols) - 1)]
    for row in df.itertuples():  # keeps each column's dtype
        cells = [v.item() if hasattr(v, "item") else v for v in row]
        out.append("| " + " | ".join(_fmt(v) for v in cells) + " |")
    return "\n".join(out) + "\n"


def markdown_report(report: dict, cfg: CleanConfig) -> str:
    """``reports/data.md``: per corpus and filter, pairs dropped and kept (a pandas table)."""
    import pandas as pd

    rows = {name: d for name, d in report["corpora"].items()} | {"total": report["total"]}
    df = pd.DataFrame(
        {name: {"input": d["input"], **d["dropped"], "kept": d["kept"]} for name, d in rows.items()}
    ).T
    df.index.name = "corpus"
    df = df.astype("int64")
    df["kept %"] = (100.0 * df["kept"] / df["input"].where(df["input"] > 0)).fillna(0.0)

    def per_set(key: str):  # one row per corpus, total, dev and test
        t = pd.DataFrame({name: d[key] for name, d in rows.items()}).T.astype("int64")
        t.index.name = "corpus"
        for split in ("dev", "test"):
            t.loc[split] = pd.Series(report[split][key])
        return t

    settings = ", ".join(f"{k}={v}" for k, v in vars(cfg).items() if k != "workers")
    parts = [
        "# Training data: what cleaning kept and dropped\n",
        "Pairs per corpus. Filters run in the column order below; a pair that several "
        "filters would drop is counted once, under the first.\n",
        _markdown_table(df),
        "| filter | drops a pair when |\n|---|---|\n"
        + "".join(f"| {f} | {FILTER_HELP[f]} |\n" for f in FILTERS),
        f"Settings: {settings}.\n",
        f"Dev and test are normalised, never filtered: dev {report['dev']['lines']:,} lines, "
        f"test {report['test']['lines']:,} lines.\n",
        "## Invalid UTF-8 (replaced by U+FFFD)\n",
        _markdown_table(per_set("invalid_utf8")),
        "## HTML (tags removed, entities unescaped)\n",
        "Lines per side that `strip_html` changed, before any filter, and pairs with either "
        "side changed"
        + ("" if cfg.strip_html else " (strip_html is off: HTML was left as it is)")
        + ".\n",
        _markdown_table(per_set("html")),
    ]
    return "\n".join(parts)
