"""Side-by-side benchmarks: aiayn against a named peer, in the same process, alternating.

Each benchmark is a module ``bench/bench_<topic>.py`` exposing ``run(quick: bool) ->
list[dict]`` (optionally also the keywords ``tiny`` and ``full``), one dict per figure::

    {"name": str, "unit": str,
     "aiayn": {"median", "min", "max"},            # aiayn's measurement
     "peer": {"median", "min", "max"} or None,     # the peer's, measured in the same run
     "peer_name": str or None,
     "ratio": float or None, "ratio_meaning": str,  # what the ratio divides, which way is better
     "notes": str}

``python -m bench [--quick | --tiny] [--full] [--only NAME ...]`` (``make bench``) runs them
all and writes ``reports/bench.json`` and ``reports/bench.md`` (:mod:`bench.report`);
``bench/gpu.sh`` measures training and decoding on a GPU machine in the same format.
"""

from __future__ import annotations

# Short name -> module, in the order of the report.
BENCHMARKS: dict[str, str] = {
    "train": "bench.bench_train",
    "memory": "bench.bench_memory",
    "decode": "bench.bench_decode",
    "bpe": "bench.bench_bpe",
    "shard": "bench.bench_shard",
    "clean": "bench.bench_clean",
    "padding": "bench.bench_padding",
}


def peak_rss_bytes() -> int:
    """This process's peak resident memory in bytes (threads included).

    Reads ``VmHWM`` from ``/proc/self/status``. ``getrusage``'s ``ru_maxrss`` is wrong for a
    child started by ``subprocess`` from a large parent: Linux starts the child with vfork,
    and at exec folds the parent's high-water mark into the child's (and so into the
    parent's ``RUSAGE_CHILDREN``). Falls back to ``ru_maxrss`` where there is no /proc.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024
