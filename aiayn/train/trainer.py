"""The training loop (paper section 5) and ``run_training``, the ``train`` stage's core.

One optimizer step (:meth:`Trainer.train_step`):

1. ``accum`` micro-batches per process, ``accum = ceil(train.tokens_per_step /
   (train.max_tokens * world_size))``, so the global batch is about ``tokens_per_step``
   tokens per side on any hardware (paper: ~25000). Forward under autocast (bf16/fp16 on
   GPUs, fp32 on CPU); the summed label-smoothed loss of each micro-batch is divided by the
   constant ``tokens_per_step`` and back-propagated (DDP synchronises only on the last one).
2. The number of non-padding target tokens of the whole step is summed over ranks, and the
   gradients are rescaled so that they equal the gradient of the *per-token mean* loss over
   the whole step: ``grad *= world_size * tokens_per_step / step_tokens`` (DDP averaged over
   ranks). Accumulation and data parallelism therefore do not change the result.
3. Optional gradient clipping; Adam(0.9, 0.98, 1e-9) at lrate of equation (3) for this
   step (1-based); fp16 uses a dynamic loss scaler which skips steps with inf/NaN gradients.

The hot loop keeps everything on the device: losses are summed as tensors and read back only
every ``train.log_every`` steps; the data loader collates in a background thread.
"""

from __future__ import annotations

import contextlib
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from aiayn.batching import Batch, BatchLoader, TokenBatchSampler, collate
from aiayn.checkpoint import (
    FORMAT,
    capture_rng,
    find_resume,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
    save_reason,
    training_fingerprint,
    weights_checksum,
)
from aiayn.config import ModelConfig, Params, TrainConfig, to_dict
from aiayn.dataset import ShardDataset, check_tokenizer
from aiayn.errors import AiaynError
from aiayn.fsio import ensure_writable_dir
from aiayn.model import Transformer
from aiayn.model_info import describe_model, train_flops
from aiayn.precision import Precision, select_device, select_precision
from aiayn.train.distributed import (
    DistEnv,
    all_gather_objects,
    all_reduce_sum,
    destroy_process_group,
    dist_env,
    init_process_group,
    launch,
    peer_failure,
    under_launcher,
)
from aiayn.train.flops import Utilisation, peak_flops
from aiayn.train.live import TrainLog
from aiayn.train.loss import label_smoothed_nll_loss
from aiayn.train.schedule import noam_lr, set_lr
from aiayn.train.signals import StopRequest


def accumulation_steps(tokens_per_step: int, max_tokens: int, world_size: int) -> int:
    """Micro-batches per process per optimizer step: ceil(tokens_per_step / (max_tokens * W))."""
    return max(1, math.ceil(tokens_per_step / (max_tokens * world_size)))


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class StepStats:
    """What one optimizer step did. Tensors stay on the device until someone reads them."""

    loss_sum: torch.Tensor  # summed smoothed loss over this process's tokens
    nll_sum: torch.Tensor  # summed NLL over this process's tokens
    tokens: int  # non-padding target tokens of the step, all ranks
    grad_norm: torch.Tensor | None  # total gradient norm (of the mean loss), if computed
    lr: float
    flags: tuple[int, ...] = ()  # ranks' flags summed (stop, save), see train_step


class Trainer:
    """Model, optimizer, loss scaler and the optimizer step.

    Args:
        model: the :class:`aiayn.model.Transformer` on ``device``.
        cfg: the ``train`` section.
        d_model: for the learning-rate schedule.
        device, precision, env: where and how to compute; ``env.world_size > 1`` wraps the
            model in DistributedDataParallel (the process group must exist).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        cfg: TrainConfig,
        d_model: int,
        device: torch.device,
        precision: Precision,
        env: DistEnv | None = None,
    ):
        self.model = model
        self.cfg = cfg
        self.d_model = d_model
        self.device = device
        self.precision = precision
        self.env = env = env or DistEnv()
        self.step = 0
        self.norm = float(cfg.tokens_per_step)  # constant divisor before backward (see doc)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.ddp = None
        net: torch.nn.Module = model
        if env.distributed:
            ids = [device.index] if device.type == "cuda" else None
            self.ddp = net = DDP(model, device_ids=ids)
        if cfg.compile:
            net = torch.compile(net)
        self.net = net
        self.optimizer = _adam(self.params, cfg, d_model, device)
        # fp16 only. The loss is a sum over tokens / tokens_per_step, about the mean per-token
        # loss, so the default initial scale suits it.
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision.loss_scaling)

    # -- one micro-batch

    def forward_backward(self, batch: Batch, sync: bool = True) -> tuple[torch.Tensor, ...]:
        """Forward, loss and backward of one micro-batch; gradients add up in ``.grad``.

        Returns (loss_sum, nll_sum) of the batch, detached 0-dim float32 tensors. ``sync``
        False skips DDP's gradient all-reduce (all but the last micro-batch of a step).
        """
        ctx = (
            self.ddp.no_sync() if (self.ddp is not None and not sync) else contextlib.nullcontext()
        )
        with ctx:
            with self.precision.autocast_context():
                logits = self.net(batch.src, batch.tgt_in)  # (B, T, V)
            sums = label_smoothed_nll_loss(logits, batch.tgt_out, self.cfg.label_smoothing)
            self.scaler.scale(sums.loss / self.norm).backward()
        return sums.loss.detach(), sums.nll

    # -- one optimizer step

    def train_step(
        self, batches: list[Batch], *, want_norm: bool = False, flags: tuple[int, ...] = ()
    ) -> StepStats:
        """Accumulate gradients over ``batches``, rescale, clip, and update (see module doc).

        ``flags`` (small ints, e.g. stop/save requests) are summed over ranks together with
        the token count, so every rank takes the same decision after the step.
        """
        loss_sum, nll_sum, tokens = self.accumulate(batches)
        tokens, flags = self._global_tokens(tokens, flags)
        grad_norm = self.finish_gradients(tokens, want_norm)
        lr = noam_lr(self.step + 1, self.d_model, self.cfg.warmup_steps, self.cfg.lr_scale)
        set_lr(self.optimizer, lr)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return StepStats(loss_sum, nll_sum, tokens, grad_norm, lr, flags)

    def accumulate(self, batches: list[Batch]) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Forward/backward every micro-batch; return (loss_sum, nll_sum, local target tokens)."""
        loss_sum = nll_sum = None
        tokens = 0
        last = len(batches) - 1
        for i, batch in enumerate(batches):
            loss, nll = self.forward_backward(batch, sync=i == last)
            loss_sum = loss if loss_sum is None else loss_sum + loss
            nll_sum = nll if nll_sum is None else nll_sum + nll
            tokens += batch.n_tgt_tokens
        return loss_sum, nll_sum, tokens

    def _global_tokens(self, tokens: int, flags: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
        if not self.env.distributed:
            return tokens, tuple(flags)
        t = torch.tensor([tokens, *flags], dtype=torch.float64, device=self.device)
        vals = [int(v) for v in all_reduce_sum(t).tolist()]
        return vals[0], tuple(vals[1:])

    def finish_gradients(self, step_tokens: int, want_norm: bool) -> torch.Tensor | None:
        """Unscale (fp16), turn summed gradients into per-token means, clip; return the norm."""
        if self.scaler.is_enabled():
            self.scaler.unscale_(self.optimizer)
        grads = [p.grad for p in self.params if p.grad is not None]
        factor = self.env.world_size * self.norm / max(step_tokens, 1)
        if factor != 1.0:
            torch._foreach_mul_(grads, factor)
        if self.cfg.clip_norm > 0:
            return torch.nn.utils.clip_grad_norm_(self.params, self.cfg.clip_norm)
        if want_norm:
            return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        return None

    # -- checkpoint state

    def state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler.is_enabled() and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])


def _adam(params: list, cfg: TrainConfig, d_model: int, device: torch.device) -> torch.optim.Adam:
    """Adam(train.adam_beta1, adam_beta2, adam_eps) at the lrate of step 1 (equation 3)."""
    return torch.optim.Adam(
        params,
        lr=noam_lr(1, d_model, cfg.warmup_steps, cfg.lr_scale),
        betas=(cfg.adam_beta1, cfg.adam_beta2),
        eps=cfg.adam_eps,
        weight_decay=cfg.weight_decay,
        **_adam_impl(device),
    )


def _adam_impl(device) -> dict:
    """The fused Adam kernel where it exists (CUDA; CPU since torch 2.4), else the default."""
    try:
        torch.optim.Adam([torch.zeros(1, device=device, requires_grad=True)], fused=True)
    except (RuntimeError, TypeError, ValueError):
        return {}
    return {"fused": True}


# ----------------------------------------------------------------------------- evaluation


def dev_batches(ds, max_tokens: int, max_len: int) -> tuple[list, int]:
    """Length-sorted dev batches under ``max_tokens`` (collated once); pairs longer than
    ``max_len`` tokens on a side are skipped. Returns (batches, skipped pairs)."""
    keep = np.flatnonzero(np.maximum(ds.src_lens, ds.tgt_lens) <= max_len)
    if len(keep) == 0:
        return [], len(ds)
    sampler = TokenBatchSampler(
        ds.src_lens[keep], ds.tgt_lens[keep], max_tokens, seed=0, shuffle=False
    )
    return [collate(ds, keep[b]) for b in sampler.batches], len(ds) - len(keep)


def evaluate(model, batches: list, precision: Precision, eps: float, device) -> dict[str, float]:
    """Per-token smoothed loss, NLL and perplexity of ``model`` on collated ``batches``."""
    was_training = model.training
    model.eval()
    loss = torch.zeros((), device=device)
    nll = torch.zeros((), device=device)
    tokens = 0
    with torch.no_grad():
        for batch in batches:
            b = batch.to(device)
            with precision.autocast_context():
                logits = model(b.src, b.tgt_in)  # (B, T, V)
            sums = label_smoothed_nll_loss(logits, b.tgt_out, eps)
            loss += sums.loss
            nll += sums.nll
            tokens += b.n_tgt_tokens
    model.train(was_training)
    n = max(tokens, 1)
    nll_tok = nll.item() / n
    return {"loss": loss.item() / n, "nll": nll_tok, "ppl": math.exp(min(nll_tok, 50.0))}


def model_flops_per_token(cfg: ModelConfig, vocab_size: int, ds) -> float:
    """Training FLOPs (forward + backward) per non-padding target token on dataset ``ds``,
    from :func:`aiayn.model_info.train_flops` with its mean sentence lengths."""
    n = max(len(ds), 1)
    src, tgt = float(ds.src_lens.sum()), max(float(ds.tgt_lens.sum()), 1.0)
    return train_flops(cfg, vocab_size, src / tgt, 1.0, src / n, tgt / n)


# ----------------------------------------------------------------------------- the stage


@dataclass(frozen=True)
class TrainPaths:
    """The train stage's inputs (shards, tokenizer) and outputs (checkpoints, dvclive)."""

    shards: Path
    tokenizer: Path
    checkpoints: Path
    live: Path


@dataclass
class RunState:
    """What one rank's run knows besides the :class:`Trainer`: where and how it computes,
    what it trains on, and the totals carried across resumes (every checkpoint records all
    but the device)."""

    device: torch.device
    precision: Precision
    vocab_size: int
    fingerprint: str  # sha256 of what the weights depend on (aiayn.checkpoint)
    fingerprint_inputs: dict  # the dict that was hashed
    tokens: int = 0  # target tokens trained on so far, all ranks
    train_seconds: float = 0.0  # wall-clock training time so far


def _print(env: DistEnv, *args) -> None:
    if env.is_main:
        print(*args, flush=True)


def run_training(
    params: Params, shards: Path, tokenizer: Path, checkpoints: Path, live: Path
) -> None:
    """Train (or resume, or do nothing) as ``params`` say; the ``train`` stage.

    Checkpoints ``checkpoints/checkpoint_<step:08d>.pt`` (see :mod:`aiayn.checkpoint`),
    curves and ``metrics.json`` in ``live`` (dvclive). ``train.nproc > 1`` outside torchrun
    launches torchrun with that many processes. SIGTERM/SIGINT save a checkpoint and exit
    with 143/130. Reaching ``max_steps`` (or finding a checkpoint already there) returns.
    """
    paths = TrainPaths(Path(shards), Path(tokenizer), Path(checkpoints), Path(live))
    if params.train.nproc > 1 and not under_launcher():
        launch(params, paths.shards, paths.tokenizer, paths.checkpoints, paths.live)
        return
    env = dist_env()
    device = _rank_device(params.train, env)
    precision = select_precision(params.train.precision, device.type)
    init_process_group(env, device)
    try:
        # The CPU probe is timed, so ranks could disagree; all follow rank 0.
        precision = all_gather_objects(precision, env)[0]
        _print(env, precision.describe())
        _train_rank(params, paths, env, device, precision)
    finally:
        destroy_process_group()


def _rank_device(cfg: TrainConfig, env: DistEnv) -> torch.device:
    """This rank's device (``train.device``), with ``train.threads`` and TF32 matmuls set."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = select_device(cfg.device, env.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def _train_rank(
    params: Params, paths: TrainPaths, env: DistEnv, device: torch.device, precision: Precision
) -> None:
    """Check the data, pick the checkpoint to resume from, and train from there (nothing to
    do when it is at ``train.max_steps`` already)."""
    train_ds = ShardDataset(paths.shards, "train", verify=True)  # sha256 of every file
    check_tokenizer(paths.shards, paths.tokenizer)
    vocab_size = train_ds.vocab_size
    fp, fp_inputs = training_fingerprint(params, paths.shards, paths.tokenizer, env.world_size)
    path, state = _resume_point(paths.checkpoints, fp, env)
    max_steps = params.train.max_steps
    if state is not None and int(state["step"]) >= max_steps:
        _print(
            env,
            f"{path} is at step {state['step']} >= train.max_steps={max_steps}: nothing to train",
        )
        return
    run = RunState(device, precision, vocab_size, fp, fp_inputs)
    _Training(params, paths, env, run, train_ds, resume=(path, state)).train()


def _resume_point(checkpoints: Path, fp: str, env: DistEnv) -> tuple[str | None, dict | None]:
    """(path, state) of the checkpoint to resume from, or (None, None) to start fresh. Rank 0
    picks (and cleans up, :func:`aiayn.checkpoint.find_resume`); the others load that file."""
    path = state = None
    if env.is_main:
        ensure_writable_dir(checkpoints)
        resume = find_resume(checkpoints, fp)
        path, state = (str(resume.path) if resume.path else None), resume.state
    path = all_gather_objects(path, env)[0]
    if path is not None and not env.is_main:
        state = load_checkpoint(Path(path))
    return path, state


def _build_trainer(params: Params, run: RunState, env: DistEnv) -> Trainer:
    """The model, with the same initial weights on every rank, and its :class:`Trainer`; then
    each rank's own random stream (distinct dropout masks)."""
    cfg, mcfg = params.train, params.model
    seed_everything(cfg.seed)
    model = Transformer(mcfg, run.vocab_size).to(run.device)  # same initial weights on every rank
    seed_everything(cfg.seed + 1_000_003 * env.rank)  # distinct dropout masks per rank
    return Trainer(
        model, cfg, d_model=mcfg.d_model, device=run.device, precision=run.precision, env=env
    )


@dataclass
class _Window:
    """Sums over the steps since the last logged one (device tensors, read when logged)."""

    loss: torch.Tensor
    nll: torch.Tensor
    tokens: int = 0
    start: float = field(default_factory=time.perf_counter)

    @classmethod
    def on(cls, device: torch.device) -> _Window:
        return cls(torch.zeros((), device=device), torch.zeros((), device=device))

    def add(self, stats: StepStats) -> None:
        self.loss += stats.loss_sum
        self.nll += stats.nll_sum
        self.tokens += stats.tokens

    def reset(self) -> None:
        self.loss.zero_()
        self.nll.zero_()
        self.tokens = 0
        self.start = time.perf_counter()


@dataclass
class _Clock:
    """The loop's wall clock: training time across resumes, and the checkpoint timer."""

    seconds_before: float  # training time of the checkpoint resumed from
    start: float = field(default_factory=time.perf_counter)
    last_save: float = field(default_factory=time.monotonic)

    def save_due(self, minutes: float) -> bool:
        """Whether ``minutes`` (``train.save_every_minutes``; 0: never) passed since the
        last checkpoint."""
        return minutes > 0 and (time.monotonic() - self.last_save) >= minutes * 60

    def train_seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self.start


class _Training:
    """One rank's training run: the trainer, the data and the logs, built in the order the
    random streams depend on, resumed; :meth:`train` runs the loop."""

    def __init__(
        self,
        params: Params,
        paths: TrainPaths,
        env: DistEnv,
        run: RunState,
        train_ds: ShardDataset,
        *,
        resume: tuple[str | None, dict | None],
    ):
        """``resume``: (path, state) of the checkpoint to resume from, or (None, None)."""
        cfg = params.train
        self.params, self.cfg, self.paths, self.env, self.run = params, cfg, paths, env, run
        self.trainer = _build_trainer(params, run, env)
        self.sampler = TokenBatchSampler(
            train_ds.src_lens,
            train_ds.tgt_lens,
            cfg.max_tokens,
            seed=cfg.seed,
            shuffle=True,
            rank=env.rank,
            world_size=env.world_size,
        )
        self.loader = BatchLoader(train_ds, self.sampler, device=run.device)
        self.accum = accumulation_steps(cfg.tokens_per_step, cfg.max_tokens, env.world_size)
        rng_state = self._resume(*resume)
        self.dev = self._dev_batches()  # rank 0 evaluates; the others hold []
        self.flops_per_token = model_flops_per_token(params.model, run.vocab_size, train_ds)
        self.utilisation = self._utilisation()
        step = self.trainer.step
        self.log = TrainLog(paths.live, step if step > 0 else None, env.is_main)
        if rng_state is not None:  # last, so that nothing above can shift the random streams
            restore_rng(rng_state, run.device)

    # -- setup

    def _resume(self, path: str | None, state: dict | None) -> dict | None:
        """Load the trainer, the data position and the totals from ``state`` (None: start
        fresh); return this rank's RNG state, to restore last."""
        env = self.env
        if state is None:
            _print(env, f"starting fresh (fingerprint {self.run.fingerprint[:12]})")
            return None
        self.trainer.load_state(state)
        self.loader.load_state_dict(state["sampler"][env.rank])
        self.run.tokens = int(state.get("tokens", 0))
        self.run.train_seconds = float(state.get("train_seconds", 0.0))
        _print(env, f"resuming from {path} (step {self.trainer.step})")
        return state["rng"][env.rank]

    def _dev_batches(self) -> list:
        """Rank 0's dev batches, after which rank 0 describes the run; [] on other ranks."""
        if not self.env.is_main:
            return []
        dev_ds = ShardDataset(self.paths.shards, "dev", verify=True)
        dev, skipped = dev_batches(dev_ds, self.cfg.max_tokens, self.params.model.max_positions - 1)
        self._describe(skipped)
        return dev

    def _describe(self, skipped: int) -> None:
        """Print the model, the device and the batch arithmetic (rank 0)."""
        cfg, env, run = self.cfg, self.env, self.run
        text = describe_model(
            self.params.model,
            run.vocab_size,
            cfg.max_tokens,
            run.precision.name,
            device=run.device.type,
        )
        print(text, flush=True)
        print(
            f"device {run.device} x {env.world_size}, precision {run.precision.name}, "
            f"accumulation {self.accum} x {cfg.max_tokens} tokens per process "
            f"(train.tokens_per_step={cfg.tokens_per_step}), {len(self.sampler)} batches per "
            f"epoch per process"
            + (f"; {skipped} dev pairs longer than the model skipped" if skipped else ""),
            flush=True,
        )

    def _utilisation(self) -> Utilisation:
        """Model FLOPs utilisation of a throughput; rank 0 finds the peak and prints it."""
        env, flops_tok = self.env, self.flops_per_token
        if not env.is_main:
            return Utilisation(flops_tok, None, env.world_size)
        peak, peak_src = peak_flops(self.run.device, self.run.precision.name)
        where = f"{peak / 1e12:.2f} TFLOP/s ({peak_src})" if peak else peak_src
        print(f"model FLOPs per target token {flops_tok / 1e6:.1f}M; peak {where}", flush=True)
        return Utilisation(flops_tok, peak, env.world_size)

    # -- the loop

    def train(self) -> None:
        """Run the loop; SIGINT/SIGTERM save a checkpoint and exit, and a rank that loses
        the others raises an :class:`AiaynError` naming its step and the checkpoints."""
        env = self.env
        try:
            repeat_aborts = not under_launcher()  # torchrun workers get Ctrl-C twice
            with StopRequest(verbose=env.is_main, abort_on_repeat=repeat_aborts) as stop:
                self._loop(stop)
        except RuntimeError as e:
            if not (env.distributed and peer_failure(e)):
                raise
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise AiaynError(
                f"rank {env.rank} lost the other training processes at step "
                f"{self.trainer.step + 1} (a node or process stopped, or the network failed: "
                f"{first}); the checkpoints in {self.paths.checkpoints} are kept: start the "
                f"stage again on every node to resume"
            ) from None
        finally:
            self.log.close()

    def _loop(self, stop: StopRequest) -> None:
        """Optimizer steps up to ``train.max_steps``; log, evaluate and save when due."""
        trainer, cfg = self.trainer, self.cfg
        it = iter(self.loader)
        pbar = self._progress_bar()
        window = _Window.on(trainer.device)
        clock = _Clock(self.run.train_seconds)
        saved_at = trainer.step if trainer.step > 0 else -1
        try:
            while trainer.step < cfg.max_steps:
                stats, stop_now, save_now = self._step(it, stop, clock)
                step = trainer.step
                window.add(stats)
                self.run.tokens += stats.tokens
                pbar.update(1)
                if self._log_due(step):
                    self._log_train(step, window, stats, pbar)
                final = step == cfg.max_steps
                if self.dev and (final or (cfg.eval_every and step % cfg.eval_every == 0)):
                    self._evaluate(step, pbar)
                if final or stop_now or save_now or step % cfg.save_every == 0:
                    self._save_at(step, clock, final=final, signal=stop_now, timer=save_now)
                    saved_at = step
                if stop_now:
                    self._stop(step, stop, pbar)
        finally:
            pbar.close()
            with contextlib.suppress(Exception):
                it.close()
        if saved_at != trainer.step:  # defensive: the final step is always saved
            last = trainer.step
            self._save(save_reason(last, cfg.save_every, final=True, signal=False, timer=False))
        _print(self.env, f"training done: step {trainer.step}, {self.run.tokens} target tokens")

    def _progress_bar(self) -> tqdm:
        return tqdm(
            total=self.cfg.max_steps,
            initial=self.trainer.step,
            unit="step",
            disable=not self.env.is_main,
            dynamic_ncols=True,
            file=sys.stderr,
        )

    def _log_due(self, step: int) -> bool:
        return step % self.cfg.log_every == 0 or step == self.cfg.max_steps

    def _step(self, it, stop: StopRequest, clock: _Clock) -> tuple[StepStats, bool, bool]:
        """One optimizer step: (its stats, stop now, save now). Under DDP a signal on any
        rank and rank 0's timer decide for every rank (summed with the step's tokens)."""
        env = self.env
        batches = [next(it) for _ in range(self.accum)]
        time_due = clock.save_due(self.cfg.save_every_minutes)
        stats = self.trainer.train_step(
            batches,
            want_norm=self._log_due(self.trainer.step + 1),
            flags=(int(stop.requested), int(time_due and env.is_main)),
        )
        if env.distributed:
            return stats, stats.flags[0] > 0, stats.flags[1] > 0
        return stats, stop.requested, time_due

    def _log_train(self, step: int, window: _Window, stats: StepStats, pbar: tqdm) -> None:
        """Log the window's averages (dvclive, progress bar) and start a new window."""
        metrics = self._train_metrics(window, stats)
        self.log.log(step, metrics)
        pbar.set_postfix(
            loss=f"{metrics['train/loss']:.3f}",
            lr=f"{stats.lr:.2e}",
            tok_s=f"{metrics['train/tokens_per_s']:.0f}",
            refresh=False,
        )
        window.reset()

    def _train_metrics(self, window: _Window, stats: StepStats) -> dict:
        """``train/*`` metrics of the window (losses summed over ranks)."""
        elapsed = time.perf_counter() - window.start
        sums = torch.stack([window.loss, window.nll]).double()
        if self.env.distributed:
            all_reduce_sum(sums)
        loss, nll = (sums / max(window.tokens, 1)).tolist()
        tok_s = window.tokens / max(elapsed, 1e-9)
        tokens = self.run.tokens
        return {
            "train/loss": loss,
            "train/nll": nll,
            "train/ppl": math.exp(min(nll, 50.0)),
            "train/lr": stats.lr,
            "train/grad_norm": float(stats.grad_norm) if stats.grad_norm is not None else None,
            "train/tokens_per_s": tok_s,
            "train/mfu": self.utilisation(tok_s),
            # Paper Table 2's training cost, counted: target tokens seen x model FLOPs each.
            "train/tokens": tokens,
            "train/flops": tokens * self.flops_per_token,
        }

    def _evaluate(self, step: int, pbar: tqdm) -> None:
        """Dev loss, NLL and perplexity (rank 0), logged and printed."""
        trainer = self.trainer
        eps = self.cfg.label_smoothing
        d = evaluate(trainer.model, self.dev, trainer.precision, eps, trainer.device)
        self.log.log(step, {f"dev/{k}": v for k, v in d.items()})
        pbar.write(f"step {step}: dev loss {d['loss']:.4f} nll {d['nll']:.4f} ppl {d['ppl']:.2f}")

    def _stop(self, step: int, stop: StopRequest, pbar: tqdm) -> None:
        """After a signal's checkpoint: exit with 128 + the signal number."""
        pbar.close()
        _print(self.env, f"stopped at step {step}; checkpoint saved, rerun to resume")
        raise SystemExit(128 + (stop.signum or 15))

    # -- checkpoints

    def _save_at(self, step: int, clock: _Clock, *, final: bool, signal: bool, timer: bool):
        """Save the checkpoint of ``step`` with its reason, and restart the timer."""
        self.run.train_seconds = clock.train_seconds()
        why = save_reason(step, self.cfg.save_every, final=final, signal=signal, timer=timer)
        self._save(why)
        clock.last_save = time.monotonic()

    def _save(self, reason: str) -> None:
        """Write a checkpoint (rank 0, with every rank's RNG and data position); ``reason``:
        why (:data:`aiayn.checkpoint.REASONS`)."""
        env, trainer, run = self.env, self.trainer, self.run
        rng = all_gather_objects(capture_rng(trainer.device), env)
        sampler = all_gather_objects(self.loader.state_dict(), env)
        sums = all_gather_objects(weights_checksum(trainer.model), env) if env.distributed else []
        if env.distributed and len(set(sums)) != 1:
            raise RuntimeError(f"DDP ranks hold different weights at step {trainer.step}")
        if not env.is_main:
            return
        state = trainer.state()
        state.update(
            format=FORMAT,
            model_config=to_dict(self.params.model),
            vocab_size=run.vocab_size,
            fingerprint=run.fingerprint,
            fingerprint_inputs=run.fingerprint_inputs,
            rng=rng,
            sampler=sampler,
            world_size=env.world_size,
            precision=run.precision.name,
            tokens=run.tokens,
            train_seconds=run.train_seconds,
            rank_checksums=sums,
            reason=reason,
        )
        save_checkpoint(state, self.paths.checkpoints, self.cfg.keep_last)
