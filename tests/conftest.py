"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Tests are small; two threads is what the CI machine has and keeps runs repeatable.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def root() -> Path:
    """The repository root."""
    return ROOT


@pytest.fixture
def demo_params():
    """The repository's params.yaml, loaded."""
    from aiayn.config import load_params

    return load_params(ROOT / "params.yaml")


@pytest.fixture
def one_thread():
    """Tiny models run fastest, and steadiest on a shared machine, on one thread
    (``pytestmark = pytest.mark.usefixtures("one_thread")`` in a module)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def cpu_bf16(monkeypatch):
    """``cpu_bf16(probe)`` makes precision selection see ``probe`` (an
    :class:`aiayn.hardware.Bf16Probe`) instead of measuring this CPU; ``FAST_BF16`` and
    ``SLOW_BF16`` (tests/train_support.py) are an AMX Xeon's and an AVX2-only EPYC's."""

    def use(probe):
        monkeypatch.setattr("aiayn.precision.probe_cpu_bf16", lambda: probe)

    return use
