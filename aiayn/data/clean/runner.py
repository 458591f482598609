"""The parallel runner of the clean stage: reads line-aligned chunks of pairs and runs
:func:`~aiayn.data.clean.filters.clean_chunk` on them in this process or on a pool of
worker processes, results in input order.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

from aiayn.config import CleanConfig
from aiayn.data.clean.filters import ChunkResult, clean_chunk
from aiayn.errors import AiaynError, DataError

# ----------------------------------------------------------------------------- worker side

_WORKER: tuple[CleanConfig, frozenset[bytes]] | None = None


def _init_worker(cfg: CleanConfig, contaminants_file: str) -> None:
    """Worker start: the dev/test segments come from a file (one per line), not through
    the start-up pipe, which a worker that fails to start would leave blocked."""
    global _WORKER
    with open(contaminants_file, "rb") as f:
        _WORKER = (cfg, frozenset(f.read().split(b"\n")) - {b""})


def _work(en_data: bytes, de_data: bytes) -> ChunkResult:
    assert _WORKER is not None
    return clean_chunk(en_data, de_data, *_WORKER)


# ----------------------------------------------------------------------------- reading


def read_chunks(en_path: Path, de_path: Path, n: int) -> Iterator[tuple[bytes, bytes]]:
    """Line-aligned chunks of at most ``n`` lines per side; DataError if the counts differ."""
    done = 0
    with open(en_path, "rb") as fe, open(de_path, "rb") as fd:
        while True:
            a, b = list(islice(fe, n)), list(islice(fd, n))
            if len(a) != len(b):
                n_en = done + len(a) + sum(1 for _ in fe)
                n_de = done + len(b) + sum(1 for _ in fd)
                raise DataError(f"{en_path} has {n_en:,} lines but {de_path} has {n_de:,}")
            if not a:
                return
            done += len(a)
            yield _join(a), _join(b)


def _join(lines: list[bytes]) -> bytes:
    data = b"".join(lines)
    return data if data.endswith(b"\n") else data + b"\n"


def worker_count(cfg: CleanConfig) -> int:
    if cfg.workers:
        return cfg.workers
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class Runner:
    """Runs :func:`clean_chunk` in-process or on worker processes, results in input order.

    Workers are started with ``spawn`` (no fork of a threaded parent; the same on every
    OS; and they are children of this process, so ``getrusage(RUSAGE_CHILDREN)`` sees
    them). A worker that dies (killed, out of memory, failed start) is an error, not a hang.
    """

    def __init__(self, cfg: CleanConfig, contaminants: frozenset[bytes], workers: int):
        self.cfg, self.contaminants, self.workers = cfg, contaminants, workers
        self.pool = None

    def __enter__(self) -> Runner:
        if self.workers > 1:
            import multiprocessing as mp
            import tempfile
            from concurrent.futures import ProcessPoolExecutor

            fd, self.shared = tempfile.mkstemp(prefix="aiayn-clean-", suffix=".txt")
            with os.fdopen(fd, "wb") as f:
                f.write(b"\n".join(sorted(self.contaminants)))
            self.pool = ProcessPoolExecutor(
                self.workers,
                mp_context=mp.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.cfg, self.shared),
            )
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=exc[0] is not None)
            os.unlink(self.shared)

    def map(self, chunks: Iterator[tuple[bytes, bytes]]) -> Iterator[ChunkResult]:
        if self.pool is None:
            for en, de in chunks:
                yield clean_chunk(en, de, self.cfg, self.contaminants)
            return
        from concurrent.futures.process import BrokenProcessPool

        window = 2 * self.workers  # chunks in flight: bounds memory
        pending: deque = deque()
        try:
            for en, de in chunks:
                pending.append(self.pool.submit(_work, en, de))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool as e:
            raise AiaynError(
                f"clean: a worker process died or failed to start ({e}); lower clean.workers "
                "if memory is short (1: clean in this process)"
            ) from e
