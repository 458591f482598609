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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiayn.config import ModelConfig, Params, TrainConfig, to_dict
from aiayn.errors import AiaynError
from aiayn.precision import Precision
from aiayn.train.distributed import DistEnv
from aiayn.train.loss import label_smoothed_nll_loss
from aiayn.train.schedule import noam_lr, set_lr

if TYPE_CHECKING:
    import torch

    from aiayn.batching import Batch


def accumulation_steps(tokens_per_step: int, max_tokens: int, world_size: int) -> int:
    """Micro-batches per process per optimizer step: ceil(tokens_per_step / (max_tokens * W))."""
    return max(1, math.ceil(tokens_per_step / (max_tokens * world_size)))


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and every GPU)."""
    import numpy as np
    import torch

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
        import torch

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
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [device.index] if device.type == "cuda" else None
            self.ddp = net = DDP(model, device_ids=ids)
        if cfg.compile:
            net = torch.compile(net)
        self.net = net
        self.optimizer = torch.optim.Adam(
            self.params,
            lr=noam_lr(1, d_model, cfg.warmup_steps, cfg.lr_scale),
            betas=(cfg.adam_beta1, cfg.adam_beta2),
            eps=cfg.adam_eps,
            weight_decay=cfg.weight_decay,
            **_adam_impl(device),
        )
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
        import torch

        from aiayn.train.distributed import all_reduce_sum

        t = torch.tensor([tokens, *flags], dtype=torch.float64, device=self.device)
        vals = [int(v) for v in all_reduce_sum(t).tolist()]
        return vals[0], tuple(vals[1:])

    def finish_gradients(self, step_tokens: int, want_norm: bool) -> torch.Tensor | None:
        """Unscale (fp16), turn summed gradients into per-token means, clip; return the norm."""
        import torch

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


def _adam_impl(device) -> dict:
    """The fused Adam kernel where it exists (CUDA; CPU since torch 2.4), else the default."""
    import torch

    try:
        torch.optim.Adam([torch.zeros(1, device=device, requires_grad=True)], fused=True)
    except (RuntimeError, TypeError, ValueError):
        return {}
    return {"fused": True}


# ----------------------------------------------------------------------------- evaluation


def dev_batches(ds, max_tokens: int, max_len: int) -> tuple[list, int]:
    """Length-sorted dev batches under ``max_tokens`` (collated once); pairs longer than
    ``max_len`` tokens on a side are skipped. Returns (batches, skipped pairs)."""
    import numpy as np

    from aiayn.batching import TokenBatchSampler, collate

    keep = np.flatnonzero(np.maximum(ds.src_lens, ds.tgt_lens) <= max_len)
    if len(keep) == 0:
        return [], len(ds)
    sampler = TokenBatchSampler(
        ds.src_lens[keep], ds.tgt_lens[keep], max_tokens, seed=0, shuffle=False
    )
    return [collate(ds, keep[b]) for b in sampler.batches], len(ds) - len(keep)


def evaluate(model, batches: list, precision: Precision, eps: float, device) -> dict[str, float]:
    """Per-token smoothed loss, NLL and perplexity of ``model`` on collated ``batches``."""
    import torch

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


# ----------------------------------------------------------------------------- the stage


def _print(env: DistEnv, *args) -> None:
    if env.is_main:
        print(*args, flush=True)


def model_flops_per_token(cfg: ModelConfig, vocab_size: int, ds) -> float:
    """Training FLOPs (forward + backward) per non-padding target token on dataset ``ds``,
    from :func:`aiayn.model_info.train_flops` with its mean sentence lengths."""
    from aiayn.model_info import train_flops

    n = max(len(ds), 1)
    src, tgt = float(ds.src_lens.sum()), max(float(ds.tgt_lens.sum()), 1.0)
    return train_flops(cfg, vocab_size, src / tgt, 1.0, src / n, tgt / n)


def run_training(
    params: Params, shards: Path, tokenizer: Path, checkpoints: Path, live: Path
) -> None:
    """Train (or resume, or do nothing) as ``params`` say; the ``train`` stage.

    Checkpoints ``checkpoints/checkpoint_<step:08d>.pt`` (see :mod:`aiayn.checkpoint`),
    curves and ``metrics.json`` in ``live`` (dvclive). ``train.nproc > 1`` outside torchrun
    launches torchrun with that many processes. SIGTERM/SIGINT save a checkpoint and exit
    with 143/130. Reaching ``max_steps`` (or finding a checkpoint already there) returns.
    """
    from aiayn.train.distributed import dist_env, launch, under_launcher

    shards, tokenizer, checkpoints, live = map(Path, (shards, tokenizer, checkpoints, live))
    if params.train.nproc > 1 and not under_launcher():
        launch(params, shards, tokenizer, checkpoints, live)
        return
    env = dist_env()
    _Run(params, shards, tokenizer, checkpoints, live, env).run()


class _Run:
    """One invocation of the train stage on one rank (setup, resume, loop, save)."""

    def __init__(self, params, shards, tokenizer, checkpoints, live, env: DistEnv):
        self.params = params
        self.cfg: TrainConfig = params.train
        self.shards, self.tokenizer = shards, tokenizer
        self.checkpoints, self.live_dir = checkpoints, live
        self.env = env

    # -- setup

    def run(self) -> None:
        import torch

        from aiayn.checkpoint import find_resume, load_checkpoint, training_fingerprint
        from aiayn.dataset import ShardDataset, check_tokenizer
        from aiayn.fsio import ensure_writable_dir
        from aiayn.precision import select_device, select_precision
        from aiayn.train.distributed import all_gather_objects, init_process_group

        cfg, env = self.cfg, self.env
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        device = select_device(cfg.device, env.local_rank)
        if device.type == "cuda":
            torch.cuda.set_device(device)
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        precision = select_precision(cfg.precision, device.type)
        init_process_group(env, device)
        try:
            # The CPU probe is timed, so ranks could disagree; all follow rank 0.
            precision = all_gather_objects(precision, env)[0]
            _print(env, precision.describe())
            train_ds = ShardDataset(self.shards, "train", verify=True)  # sha256 of every file
            check_tokenizer(self.shards, self.tokenizer)
            vocab_size = train_ds.vocab_size
            fp, fp_inputs = training_fingerprint(
                self.params, self.shards, self.tokenizer, env.world_size
            )
            # Rank 0 picks (and cleans up); the others load the same file.
            if env.is_main:
                ensure_writable_dir(self.checkpoints)
                resume = find_resume(self.checkpoints, fp)
                path = str(resume.path) if resume.path else None
            path = all_gather_objects(path if env.is_main else None, env)[0]
            state = None
            if path is not None:
                state = resume.state if env.is_main else load_checkpoint(Path(path))
            if state is not None and int(state["step"]) >= cfg.max_steps:
                _print(
                    env,
                    f"{path} is at step {state['step']} >= train.max_steps={cfg.max_steps}: "
                    "nothing to train",
                )
                return
            self._train(train_ds, vocab_size, device, precision, fp, fp_inputs, state, path)
        finally:
            from aiayn.train.distributed import destroy_process_group

            destroy_process_group()

    def _train(self, train_ds, vocab_size, device, precision, fp, fp_inputs, state, path):
        from aiayn.batching import BatchLoader, TokenBatchSampler
        from aiayn.checkpoint import restore_rng
        from aiayn.dataset import ShardDataset
        from aiayn.model import Transformer
        from aiayn.train.distributed import peer_failure, under_launcher
        from aiayn.train.flops import Utilisation, peak_flops
        from aiayn.train.live import TrainLog
        from aiayn.train.signals import StopRequest

        cfg, env, mcfg = self.cfg, self.env, self.params.model
        seed_everything(cfg.seed)
        model = Transformer(mcfg, vocab_size).to(device)  # same initial weights on every rank
        seed_everything(cfg.seed + 1_000_003 * env.rank)  # distinct dropout masks per rank
        trainer = Trainer(model, cfg, mcfg.d_model, device, precision, env)
        sampler = TokenBatchSampler(
            train_ds.src_lens,
            train_ds.tgt_lens,
            cfg.max_tokens,
            seed=cfg.seed,
            shuffle=True,
            rank=env.rank,
            world_size=env.world_size,
        )
        loader = BatchLoader(train_ds, sampler, device=device)
        accum = accumulation_steps(cfg.tokens_per_step, cfg.max_tokens, env.world_size)

        rng_state = None
        if state is not None:
            trainer.load_state(state)
            rng_state = state["rng"][env.rank]
            loader.load_state_dict(state["sampler"][env.rank])
            self.tokens_total = int(state.get("tokens", 0))
            self.train_seconds = float(state.get("train_seconds", 0.0))
            _print(env, f"resuming from {path} (step {trainer.step})")
        else:
            self.tokens_total, self.train_seconds = 0, 0.0
            _print(env, f"starting fresh (fingerprint {fp[:12]})")
        del state

        dev, skipped = [], 0  # rank 0 evaluates
        if env.is_main:
            dev_ds = ShardDataset(self.shards, "dev", verify=True)
            dev, skipped = dev_batches(dev_ds, cfg.max_tokens, mcfg.max_positions - 1)
            self._describe(mcfg, vocab_size, precision, device, accum, len(sampler), skipped)
        flops_tok = model_flops_per_token(mcfg, vocab_size, train_ds)
        peak, peak_src = peak_flops(device, precision.name) if env.is_main else (None, "")
        if env.is_main:
            where = f"{peak / 1e12:.2f} TFLOP/s ({peak_src})" if peak else peak_src
            print(f"model FLOPs per target token {flops_tok / 1e6:.1f}M; peak {where}", flush=True)
        self.utilisation = Utilisation(flops_tok, peak, env.world_size)
        self.flops_per_token = flops_tok
        self.ctx = dict(
            trainer=trainer,
            loader=loader,
            sampler=sampler,
            precision=precision,
            device=device,
            fp=fp,
            fp_inputs=fp_inputs,
            vocab_size=vocab_size,
        )
        log = TrainLog(self.live_dir, trainer.step if trainer.step > 0 else None, env.is_main)
        if rng_state is not None:  # last, so that nothing above can shift the random streams
            restore_rng(rng_state, device)
        try:
            repeat_aborts = not under_launcher()  # torchrun workers get Ctrl-C twice
            with StopRequest(verbose=env.is_main, abort_on_repeat=repeat_aborts) as stop:
                self._loop(trainer, loader, accum, dev, stop, log)
        except RuntimeError as e:
            if not (env.distributed and peer_failure(e)):
                raise
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise AiaynError(
                f"rank {env.rank} lost the other training processes at step {trainer.step + 1} "
                f"(a node or process stopped, or the network failed: {first}); the checkpoints "
                f"in {self.checkpoints} are kept: start the stage again on every node to resume"
            ) from None
        finally:
            log.close()

    def _describe(self, mcfg, vocab_size, precision, device, accum, n_batches, skipped):
        from aiayn.model_info import describe_model

        cfg, env = self.cfg, self.env
        text = describe_model(mcfg, vocab_size, cfg.max_tokens, precision.name, device=device.type)
        print(text, flush=True)
        print(
            f"device {device} x {env.world_size}, precision {precision.name}, "
            f"accumulation {accum} x {cfg.max_tokens} tokens per process "
            f"(train.tokens_per_step={cfg.tokens_per_step}), {n_batches} batches per epoch "
            f"per process"
            + (f"; {skipped} dev pairs longer than the model skipped" if skipped else ""),
            flush=True,
        )

    # -- the loop

    def _loop(self, trainer, loader, accum, dev, stop, log) -> None:
        import torch
        from tqdm import tqdm

        from aiayn.checkpoint import save_reason

        cfg, env = self.cfg, self.env
        device = trainer.device
        it = iter(loader)
        pbar = tqdm(
            total=cfg.max_steps,
            initial=trainer.step,
            unit="step",
            disable=not env.is_main,
            dynamic_ncols=True,
            file=sys.stderr,
        )
        win_loss = torch.zeros((), device=device)
        win_nll = torch.zeros((), device=device)
        win_tokens = 0
        win_start = time.perf_counter()
        last_save = time.monotonic()
        run_start = time.perf_counter()
        seconds_before = self.train_seconds
        saved_at = trainer.step if trainer.step > 0 else -1
        try:
            while trainer.step < cfg.max_steps:
                batches = [next(it) for _ in range(accum)]
                step = trainer.step + 1
                want_norm = step % cfg.log_every == 0 or step == cfg.max_steps
                minutes = cfg.save_every_minutes
                time_due = minutes > 0 and (time.monotonic() - last_save) >= minutes * 60
                stats = trainer.train_step(
                    batches,
                    want_norm=want_norm,
                    flags=(int(stop.requested), int(time_due and env.is_main)),
                )
                stop_now = stats.flags[0] > 0 if env.distributed else stop.requested
                save_now = stats.flags[1] > 0 if env.distributed else time_due
                win_loss += stats.loss_sum
                win_nll += stats.nll_sum
                win_tokens += stats.tokens
                self.tokens_total += stats.tokens
                pbar.update(1)
                if want_norm:
                    elapsed = time.perf_counter() - win_start
                    metrics = self._train_metrics(win_loss, win_nll, win_tokens, elapsed, stats)
                    log.log(step, metrics)
                    pbar.set_postfix(
                        loss=f"{metrics['train/loss']:.3f}",
                        lr=f"{stats.lr:.2e}",
                        tok_s=f"{metrics['train/tokens_per_s']:.0f}",
                        refresh=False,
                    )
                    win_loss.zero_()
                    win_nll.zero_()
                    win_tokens = 0
                    win_start = time.perf_counter()
                final = step == cfg.max_steps
                due = final or (cfg.eval_every and step % cfg.eval_every == 0)
                if env.is_main and dev and due:
                    d = evaluate(trainer.model, dev, trainer.precision, cfg.label_smoothing, device)
                    log.log(step, {f"dev/{k}": v for k, v in d.items()})
                    pbar.write(
                        f"step {step}: dev loss {d['loss']:.4f} nll {d['nll']:.4f} "
                        f"ppl {d['ppl']:.2f}"
                    )
                if final or stop_now or save_now or step % cfg.save_every == 0:
                    self.train_seconds = seconds_before + time.perf_counter() - run_start
                    why = save_reason(
                        step, cfg.save_every, final=final, signal=stop_now, timer=save_now
                    )
                    self._save(trainer, loader, why)
                    saved_at = step
                    last_save = time.monotonic()
                if stop_now:
                    pbar.close()
                    signum = stop.signum or 15
                    _print(env, f"stopped at step {step}; checkpoint saved, rerun to resume")
                    raise SystemExit(128 + signum)
        finally:
            pbar.close()
            with contextlib.suppress(Exception):
                it.close()
        if saved_at != trainer.step:  # defensive: the final step is always saved
            why = save_reason(trainer.step, cfg.save_every, final=True, signal=False, timer=False)
            self._save(trainer, loader, why)
        _print(env, f"training done: step {trainer.step}, {self.tokens_total} target tokens")

    def _train_metrics(self, win_loss, win_nll, win_tokens, elapsed, stats):
        import torch

        from aiayn.train.distributed import all_reduce_sum

        env = self.env
        sums = torch.stack([win_loss, win_nll]).double()
        if env.distributed:
            all_reduce_sum(sums)
        loss, nll = (sums / max(win_tokens, 1)).tolist()
        tok_s = win_tokens / max(elapsed, 1e-9)
        mfu = self.utilisation(tok_s)
        return {
            "train/loss": loss,
            "train/nll": nll,
            "train/ppl": math.exp(min(nll, 50.0)),
            "train/lr": stats.lr,
            "train/grad_norm": float(stats.grad_norm) if stats.grad_norm is not None else None,
            "train/tokens_per_s": tok_s,
            "train/mfu": mfu,
            # Paper Table 2's training cost, counted: target tokens seen x model FLOPs each.
            "train/tokens": self.tokens_total,
            "train/flops": self.tokens_total * self.flops_per_token,
        }

    def _save(self, trainer, loader, reason: str) -> None:
        """Write a checkpoint; ``reason``: why (:data:`aiayn.checkpoint.REASONS`)."""
        from aiayn.checkpoint import (
            FORMAT,
            capture_rng,
            save_checkpoint,
            weights_checksum,
        )
        from aiayn.train.distributed import all_gather_objects

        env, c = self.env, self.ctx
        rng = all_gather_objects(capture_rng(trainer.device), env)
        sampler = all_gather_objects(loader.state_dict(), env)
        sums = all_gather_objects(weights_checksum(trainer.model), env) if env.distributed else []
        if env.distributed and len(set(sums)) != 1:
            raise RuntimeError(f"DDP ranks hold different weights at step {trainer.step}")
        if not env.is_main:
            return
        state = trainer.state()
        state.update(
            format=FORMAT,
            model_config=to_dict(self.params.model),
            vocab_size=c["vocab_size"],
            fingerprint=c["fp"],
            fingerprint_inputs=c["fp_inputs"],
            rng=rng,
            sampler=sampler,
            world_size=env.world_size,
            precision=c["precision"].name,
            tokens=self.tokens_total,
            train_seconds=self.train_seconds,
            rank_checksums=sums,
            reason=reason,
        )
        save_checkpoint(state, self.checkpoints, self.cfg.keep_last)
