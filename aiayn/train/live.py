"""Training curves with dvclive, continuous across resumes.

Metrics go to ``<live>/plots/metrics/{train,dev}/<name>.tsv`` (one row per logged step) and
the latest values to ``<live>/metrics.json`` (the stage's DVC metrics). ``Live`` is created
with ``dvcyaml=False`` (``dvc.yaml`` declares the plots) and ``save_dvc_exp=False``.

A fresh run clears the folder (``resume=False``). A resumed run first drops every row logged
*after* the checkpoint it resumes from (those steps are trained again), then appends: the
curves have no duplicated and no missing steps. dvclive is imported here only, so the
trainer imports without it until it logs.
"""

from __future__ import annotations

import csv
import math
import os
import sys
from pathlib import Path

from aiayn.fsio import atomic_file


def _files_only_live():
    """``dvclive.Live`` that only writes files: it skips the DVC/git repository lookup.

    ``Live`` opens the DVC repository around the working directory to support experiments
    and artifacts, which this stage does not use. That lookup fails in a git repository
    without commits (``SCMError: Empty git repo``), runs ``dvc init`` in a git repository
    that has no DVC yet, and costs a second per start. The files written are the same.
    """
    from dvclive import Live

    class FilesOnlyLive(Live):
        def _init_dvc(self) -> None:
            self._dvc_repo = None
            self._save_dvc_exp = False
            self._dvc_file = self._init_dvc_file()

    return FilesOnlyLive


def truncate_after(live_dir: Path, step: int) -> int:
    """Drop rows with ``step`` greater than ``step`` from every ``.tsv`` under ``live_dir``.

    Returns the number of rows dropped. Files are rewritten atomically.
    """
    dropped = 0
    root = Path(live_dir) / "plots"
    if not root.is_dir():
        return 0
    for path in sorted(root.rglob("*.tsv")):
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f, delimiter="\t"))
        if not rows or "step" not in rows[0]:
            continue
        col = rows[0].index("step")
        keep = [rows[0]]
        for r in rows[1:]:
            try:
                if int(float(r[col])) <= step:
                    keep.append(r)
                    continue
            except (ValueError, IndexError):
                pass
            dropped += 1
        if len(keep) != len(rows):
            with atomic_file(path, newline="") as f:
                csv.writer(f, delimiter="\t", lineterminator=os.linesep).writerows(keep)
    return dropped


class TrainLog:
    """dvclive logger; a no-op on ranks other than 0 (``enabled=False``)."""

    def __init__(self, live_dir: Path, resume_step: int | None, enabled: bool = True):
        self.live = None
        if not enabled:
            return
        try:
            live_cls = _files_only_live()
        except ImportError:
            print("warning: dvclive is not installed: no training curves", file=sys.stderr)
            return
        live_dir = Path(live_dir)
        resume = resume_step is not None
        if resume:
            truncate_after(live_dir, resume_step)
        self.live = live_cls(
            str(live_dir), resume=resume, dvcyaml=False, save_dvc_exp=False, report=None
        )

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Append ``metrics`` (name -> value, e.g. ``train/loss``) at ``step``; update the summary."""
        if self.live is None:
            return
        self.live.step = step
        for name, value in metrics.items():
            if value is None:
                continue
            value = float(value)
            self.live.log_metric(name, value if math.isfinite(value) else str(value))
        self.live.make_summary()

    def close(self) -> None:
        if self.live is not None:
            self.live.make_summary()
            self.live = None
