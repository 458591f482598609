"""Render the training curves of a run (dvclive files) as one PNG, for the README.

    python docs/plot_curves.py                      # reports/train -> docs/img/training_curves.png
    python docs/plot_curves.py --live other/run/train --out curves.png

Reads ``<live>/plots/metrics/{train,dev}/<name>.tsv`` as the train stage writes them (columns
``step`` and the metric) and draws four panels against the optimizer step: label-smoothed loss
and NLL (train and dev), the learning rate, and throughput. ``dvc plots show`` renders the same
curves interactively; this script exists because a README needs a picture.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated

import typer

from aiayn.cli_util import new_app, run

app = new_app()

# (panel title, y label, [(split, metric, legend)]); the first curve of each panel must exist.
PANELS = [
    (
        "Label-smoothed loss",
        "nats per target token",
        [("train", "loss", "train"), ("dev", "loss", "dev")],
    ),
    (
        "Negative log-likelihood",
        "nats per target token",
        [("train", "nll", "train"), ("dev", "nll", "dev")],
    ),
    ("Learning rate, equation (3)", "learning rate", [("train", "lr", None)]),
    ("Throughput", "target tokens per second", [("train", "tokens_per_s", None)]),
]


def read_curve(path: Path, metric: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one dvclive ``.tsv`` file."""
    from aiayn.errors import DataError

    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    try:
        return [int(float(r["step"])) for r in rows], [float(r[metric]) for r in rows]
    except (KeyError, ValueError) as e:
        raise DataError(f"{path}: not a dvclive metric file with step and {metric}: {e}") from None


def plot_curves(live: Path, out: Path, title: str | None = None) -> Path:
    """Draw the four panels from ``live`` into the PNG ``out`` (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from aiayn.fsio import atomic_path, require_inputs

    metrics = live / "plots" / "metrics"
    require_inputs(
        *(metrics / s / f"{m}.tsv" for _, _, c in PANELS for s, m, _ in c[:1]), stage="train"
    )
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.4), constrained_layout=True)
    for ax, (name, ylabel, curves) in zip(axes.flat, PANELS, strict=True):
        for split, metric, label in curves:
            path = metrics / split / f"{metric}.tsv"
            if not path.exists():
                continue
            steps, values = read_curve(path, metric)
            style = {"marker": "o", "markersize": 3} if split == "dev" else {}
            ax.plot(steps, values, label=label, **style)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if any(label for _, _, label in curves):
            ax.legend()
    if title:
        fig.suptitle(title)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=96)
    plt.close(fig)
    return out


@app.command()
def main(
    live: Annotated[Path, typer.Option(help="dvclive folder of the train stage")] = Path(
        "reports/train"
    ),
    out: Annotated[Path, typer.Option(help="PNG to write")] = Path("docs/img/training_curves.png"),
    title: Annotated[str | None, typer.Option(help="figure title")] = None,
) -> None:
    """Render the training curves of a run as a PNG."""
    print(plot_curves(live, out, title))


if __name__ == "__main__":
    run(app)
