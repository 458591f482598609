"""Token-budget batches (section 5.1: "sentence pairs were batched together by approximate
sequence length"), collation into padded tensors, and a prefetching loader.

- :class:`TokenBatchSampler` groups pairs of similar length under a padded-token budget,
  shuffles the order of the batches each epoch, shares them out across distributed ranks
  and resumes mid-epoch.
- :func:`collate` turns a list of pair indices into a :class:`Batch` of padded tensors.
- :class:`BatchLoader` runs sampler + collate in a background thread, epoch after epoch, so
  the accelerator never waits for the next batch; its position is resumable.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from aiayn.dataset import length_order
from aiayn.errors import AiaynError, DataError
from aiayn.vocab import BOS, PAD

if TYPE_CHECKING:
    from aiayn.dataset import ShardDataset


# ----------------------------------------------------------------------------- sampler


def batch_cost(src_lens: np.ndarray, tgt_lens: np.ndarray) -> int:
    """Padded tokens per side of a batch: ``B * max(max src len, max tgt len)``."""
    return len(src_lens) * max(int(src_lens.max()), int(tgt_lens.max()))


def make_batches(src_lens: np.ndarray, tgt_lens: np.ndarray, max_tokens: int) -> list[np.ndarray]:
    """Cut the length-sorted order greedily into batches of cost <= ``max_tokens``.

    A batch grows while ``len(batch) * max(longest src, longest tgt) <= max_tokens``. A
    single pair longer than ``max_tokens`` becomes a batch of its own (the only batches over
    budget; the shard stage never writes such training pairs when
    ``train.max_tokens >= shard.max_tokens_per_side``).
    """
    order = length_order(src_lens, tgt_lens)
    m = np.maximum(src_lens, tgt_lens)[order].astype(np.int64)  # (n,) cost per pair
    batches = []
    i, n = 0, len(order)
    while i < n:
        cap = max(1, max_tokens // max(int(m[i]), 1))  # most pairs a batch from i can hold
        run = np.maximum.accumulate(m[i : i + cap])  # (<=cap,) longest so far
        cost = run * np.arange(1, len(run) + 1)  # non-decreasing
        k = max(1, int(np.searchsorted(cost, max_tokens, side="right")))
        batches.append(order[i : i + k])
        i += k
    return batches


def _even_out(batches: list[np.ndarray], world_size: int) -> tuple[list[np.ndarray], int]:
    """Make ``len(batches)`` divisible by ``world_size``; return (batches, repeated).

    The largest batches are halved (still under budget; every pair still exactly once).
    Only when no batch has two pairs left are the first batches repeated (``repeated`` > 0).
    """
    batches = list(batches)
    while len(batches) % world_size:
        sizes = np.array([len(b) for b in batches])
        j = int(np.argmax(sizes))  # first of the largest
        if sizes[j] < 2:
            need = -len(batches) % world_size
            return batches + [batches[k % len(batches)] for k in range(need)], need
        half = len(batches[j]) // 2
        batches[j : j + 1] = [batches[j][:half], batches[j][half:]]
    return batches, 0


class TokenBatchSampler:
    """Batches of pair indices under a padded-token budget, reshuffled every epoch.

    Args:
        src_lens, tgt_lens: (n,) tokens per pair, EOS included.
        max_tokens: budget per batch: ``len(batch) * max(max src len, max tgt len)``.
        seed: the batch order of epoch ``e`` is a permutation drawn from (seed, e).
        shuffle: False keeps the length-sorted order (evaluation).
        rank, world_size: this process's share in distributed training.

    The batches themselves are fixed (cut once from the length-sorted order); each epoch
    permutes them and rank ``r`` takes every ``world_size``-th batch from ``r``. So every
    pair is visited exactly once per epoch across ranks and every rank gets ``len(self)``
    batches: the batch list is made divisible by ``world_size`` by halving its largest
    batches. (Only with fewer pairs than ranks, when every batch holds one pair, are the
    first batches repeated; ``self.repeated`` says how many.)

    Iterating yields the remaining batches of the current epoch as lists of indices and
    advances ``position``; :meth:`state_dict` / :meth:`load_state_dict` save and restore
    (epoch, position), so a resumed sampler yields exactly the batches that were left.
    """

    def __init__(
        self,
        src_lens: Sequence[int] | np.ndarray,
        tgt_lens: Sequence[int] | np.ndarray,
        max_tokens: int,
        *,
        seed: int,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ):
        src = np.asarray(src_lens, dtype=np.int64)
        tgt = np.asarray(tgt_lens, dtype=np.int64)
        if src.shape != tgt.shape or src.ndim != 1:
            raise ValueError(f"src_lens {src.shape} and tgt_lens {tgt.shape} must be equal (n,)")
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1; got {max_tokens}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}); got {rank}")
        self.max_tokens = int(max_tokens)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.n_pairs = len(src)
        batches, self.repeated = _even_out(make_batches(src, tgt, self.max_tokens), world_size)
        self.batches: list[np.ndarray] = batches
        self.n_oversize = int(sum(batch_cost(src[b], tgt[b]) > max_tokens for b in batches))
        h = hashlib.sha256()
        for b in batches:
            h.update(np.int64(len(b)).tobytes() + b.astype(np.int64).tobytes())
        self.layout_sha256 = h.hexdigest()
        self.epoch = 0
        self.position = 0

    def __len__(self) -> int:
        """Batches per epoch on this rank (the same on every rank)."""
        return len(self.batches) // self.world_size

    def set_epoch(self, epoch: int) -> None:
        """Move to ``epoch`` at its first batch; the current epoch keeps its position."""
        if epoch != self.epoch:
            self.epoch = int(epoch)
            self.position = 0

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """This rank's batches of ``epoch``, in order (a pure function of seed and epoch)."""
        nb = len(self.batches)
        if self.shuffle:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, int(epoch)]))
            perm = rng.permutation(nb)
        else:
            perm = np.arange(nb)
        return [self.batches[j] for j in perm[self.rank :: self.world_size]]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.epoch_batches(self.epoch)
        while self.position < len(batches):
            b = batches[self.position]
            self.position += 1
            yield b.tolist()

    def state_dict(self) -> dict[str, Any]:
        """(epoch, position) plus what must match on resume; plain ints and strings."""
        return {
            "epoch": self.epoch,
            "position": self.position,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "world_size": self.world_size,
            "max_tokens": self.max_tokens,
            "n_pairs": self.n_pairs,
            "layout_sha256": self.layout_sha256,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at ``state``'s (epoch, position); AiaynError if it was another setup."""
        for key in ("seed", "shuffle", "world_size", "max_tokens", "n_pairs", "layout_sha256"):
            mine = getattr(self, key)
            if state.get(key) != mine:
                raise AiaynError(
                    f"cannot resume the batch order: saved {key}={state.get(key)!r}, now "
                    f"{mine!r} (data, train.max_tokens, train.seed or nproc changed)"
                )
        position = int(state["position"])
        if not 0 <= position <= len(self):
            raise AiaynError(f"cannot resume: position {position} outside 0..{len(self)}")
        self.epoch = int(state["epoch"])
        self.position = position


# ----------------------------------------------------------------------------- collate


@dataclass
class Batch:
    """A padded batch; every tensor is int64, padded with PAD (0).

    src: (B, S) source ids, EOS last.
    tgt_in: (B, T) decoder input: BOS then the target without its EOS.
    tgt_out: (B, T) decoder target: the target with its EOS.
    n_src_tokens, n_tgt_tokens: non-pad tokens in ``src`` and ``tgt_out``.
    """

    src: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor
    n_src_tokens: int
    n_tgt_tokens: int

    def __len__(self) -> int:
        return self.src.shape[0]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """A copy on ``device`` (asynchronous from pinned memory with ``non_blocking``)."""
        return Batch(
            self.src.to(device, non_blocking=non_blocking),
            self.tgt_in.to(device, non_blocking=non_blocking),
            self.tgt_out.to(device, non_blocking=non_blocking),
            self.n_src_tokens,
            self.n_tgt_tokens,
        )

    def pin_memory(self) -> Batch:
        """A copy in page-locked memory (what ``DataLoader(pin_memory=True)`` calls)."""
        return Batch(
            self.src.pin_memory(),
            self.tgt_in.pin_memory(),
            self.tgt_out.pin_memory(),
            self.n_src_tokens,
            self.n_tgt_tokens,
        )


def collate(ds: ShardDataset, indices: Sequence[int] | np.ndarray) -> Batch:
    """Pad the pairs ``indices`` of ``ds`` into a :class:`Batch` (see its shapes)."""
    idx = np.asarray(indices, dtype=np.int64)
    if idx.size == 0:
        raise ValueError("collate needs at least one index")
    src, src_lens = ds.padded("src", idx, PAD)  # (B, S)
    tgt_out, tgt_lens = ds.padded("tgt", idx, PAD)  # (B, T)
    tgt_in = np.empty_like(tgt_out)  # (B, T)
    tgt_in[:, 0] = BOS
    tgt_in[:, 1:] = tgt_out[:, :-1]
    rows = np.flatnonzero(tgt_lens < tgt_out.shape[1])
    tgt_in[rows, tgt_lens[rows]] = PAD  # the shifted EOS is not an input
    return Batch(
        torch.from_numpy(src),
        torch.from_numpy(tgt_in),
        torch.from_numpy(tgt_out),
        int(src_lens.sum()),
        int(tgt_lens.sum()),
    )


# ----------------------------------------------------------------------------- loader


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


_END = object()


class BatchLoader:
    """Yields :class:`Batch` es epoch after epoch, collated ahead in a background thread.

    Args:
        ds: the split to read.
        sampler: its :class:`TokenBatchSampler`; the loader starts at the sampler's (epoch,
            position) and keeps the sampler's ``epoch``/``position`` at the last batch
            *delivered* (not prefetched), so ``state_dict()`` resumes exactly there.
        device: move each batch there (non-blocking from pinned memory on CUDA); None keeps
            CPU tensors.
        prefetch: batches collated ahead.
        pin_memory: page-lock batches in the thread; default: when ``device`` is CUDA.
        epochs: stop after this many epochs (counting the current one); None: forever.

    ``loader.epoch`` / ``loader.position`` tell where the next batch comes from.
    """

    def __init__(
        self,
        ds: ShardDataset,
        sampler: TokenBatchSampler,
        *,
        device: torch.device | str | None = None,
        prefetch: int = 8,
        pin_memory: bool | None = None,
        epochs: int | None = None,
    ):
        if len(sampler) == 0:
            raise DataError(f"{ds.dir} {ds.split}: no batches to load (empty split)")
        if sampler.n_pairs != len(ds):
            raise ValueError(f"sampler has {sampler.n_pairs} pairs, dataset {len(ds)}")
        self.ds = ds
        self.sampler = sampler
        self.device = torch.device(device) if device is not None else None
        self.prefetch = max(1, prefetch)
        on_cuda = self.device is not None and self.device.type == "cuda"
        self.pin_memory = on_cuda if pin_memory is None else pin_memory
        self.epochs = epochs

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    @property
    def position(self) -> int:
        return self.sampler.position

    def state_dict(self) -> dict[str, Any]:
        """The sampler's state at the last delivered batch."""
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict` (call before iterating)."""
        self.sampler.load_state_dict(state)

    def _produce(self, start: tuple[int, int], q: queue.Queue, stop: threading.Event) -> None:
        """Thread body: put (epoch, position after, Batch) for every batch from ``start``."""
        try:
            epoch, pos = start
            done = 0
            while self.epochs is None or done < self.epochs:
                batches = self.sampler.epoch_batches(epoch)
                for p in range(pos, len(batches)):
                    batch = collate(self.ds, batches[p])
                    if self.pin_memory:
                        batch = batch.pin_memory()
                    while not stop.is_set():
                        try:
                            q.put((epoch, p + 1, batch), timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                epoch, pos, done = epoch + 1, 0, done + 1
            q.put(_END)
        except BaseException as e:  # forwarded to the consumer
            q.put(_Failure(e))

    def __iter__(self) -> Iterator[Batch]:
        s = self.sampler
        if s.position >= len(s):  # the current epoch is used up: start the next one
            s.set_epoch(s.epoch + 1)
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        worker = threading.Thread(
            target=self._produce, args=((s.epoch, s.position), q, stop), daemon=True
        )
        worker.start()
        try:
            while True:
                item = q.get()
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.exc
                epoch, position, batch = item
                s.epoch, s.position = epoch, position
                if self.device is not None:
                    batch = batch.to(self.device, non_blocking=self.pin_memory)
                yield batch
        finally:
            stop.set()
            while worker.is_alive():
                try:
                    q.get_nowait()
                except queue.Empty:
                    worker.join(timeout=0.05)
