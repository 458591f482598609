"""The real pipeline, end to end, in a few minutes: the GPU script's last case.

Runs the stage modules directly (``python -m stages.<name>``, no dvc) in a scratch folder:
download (the offline demo corpus) -> clean -> tokenize -> shard -> train -> average ->
translate -> score. The model has the base dimensions (N=6, d_model 512, d_ff 2048, h=8,
dropout 0.1; pre-norm, which trains reliably in a short run) and trains for about
``train_seconds`` (3 minutes on a GPU). Only checkpoints on the ``train.save_every`` step
grid are averaged (:mod:`aiayn.average`), so the run is planned in steps
(:func:`plan_steps`): from the training rate measured before it, ``max_steps`` for the time
and ``save_every`` a sixth of it, so that it ends on the grid with six grid checkpoints, of
which the last 3 are averaged. Should it be slower than planned, the stage gets SIGTERM (the
signal Colab and Slurm send; it saves a checkpoint and exits 143) once its time is up and a
grid checkpoint exists. Then the demo's newstest-like test sentences are translated with
beam 4. Figures: the test BLEU (sacreBLEU, with the paper's tokenized BLEU and chrF in the
notes), the wall time of every stage and the training steps done. ``tiny`` shrinks
everything for the CPU self-test, and stops training by SIGTERM (a grid checkpoint every 5
steps, no ``max_steps`` in reach).

Needs the project's runtime dependencies (tokenizers, sacrebleu, sacremoses, typer, pyyaml,
tqdm); dvc and dvclive are not needed (without dvclive the trainer logs no curves).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("download", "clean", "tokenize", "shard", "train", "average", "translate", "score")
NEEDS = ("tokenizers", "sacrebleu", "sacremoses", "typer", "yaml", "tqdm", "numpy")
BASE_MODEL = {
    "encoder_layers": 6,
    "decoder_layers": 6,
    "d_model": 512,
    "d_ff": 2048,
    "n_heads": 8,
    "dropout": 0.1,
    "attention_dropout": 0.0,
    "activation_dropout": 0.0,
    "norm": "pre",
    "tie_embeddings": True,
    "max_positions": 512,
}
TINY_MODEL = {**BASE_MODEL, "encoder_layers": 1, "decoder_layers": 1, "d_model": 32}
TINY_MODEL.update(d_ff=64, n_heads=2, dropout=0.0)


def missing_dependencies() -> list[str]:
    """The runtime dependencies of the stages that this python cannot import."""
    import importlib.util

    return [m for m in NEEDS if importlib.util.find_spec(m) is None]


TOKENS_PER_STEP = 12500  # the full run's tokens per step (one micro-batch of base's size)
GRID_CHECKPOINTS = 6  # save_every checkpoints a planned run writes, the last at max_steps


def demo_vocab_size() -> int:
    """``tokenizer.vocab_size`` of ``configs/demo.yaml`` (the full run's vocabulary)."""
    from aiayn.config import load_params

    return load_params(ROOT / "configs" / "demo.yaml").tokenizer.vocab_size


def plan_steps(seconds: float, steps_per_s: float) -> tuple[int, int]:
    """(max_steps, save_every) of a run of about ``seconds`` at ``steps_per_s``: max_steps
    a multiple of save_every, :data:`GRID_CHECKPOINTS` grid checkpoints in all."""
    save_every = max(1, round(seconds * steps_per_s / GRID_CHECKPOINTS))
    return GRID_CHECKPOINTS * save_every, save_every


def pipeline_params(tiny: bool, max_steps: int = 600, save_every: int = 100) -> dict:
    """The params.yaml of the run: ``configs/demo.yaml`` with the base dimensions,
    ``max_steps`` and ``save_every`` (:func:`plan_steps`), a warm-up of a quarter of the run
    (100-1000 steps), no timer checkpoints and the last 3 grid checkpoints averaged;
    ``tiny``: a 2k-pair corpus, a 500-token BPE, a 1+1-layer model, a checkpoint every 5
    steps and no ``max_steps`` in reach (SIGTERM stops it)."""
    import yaml

    p = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text(encoding="utf-8"))
    p["model"].update(TINY_MODEL if tiny else BASE_MODEL)  # demo's other keys (d_k, ...) stay
    p["train"].update(
        max_steps=1_000_000 if tiny else max_steps,
        tokens_per_step=512 if tiny else TOKENS_PER_STEP,
        max_tokens=512 if tiny else TOKENS_PER_STEP,
        lr_scale=1.0,
        warmup_steps=50 if tiny else min(1000, max(100, max_steps // 4)),
        save_every=5 if tiny else save_every,
        save_every_minutes=0.0,  # only grid checkpoints: the SIGTERM waits for one
        keep_last=5,
        eval_every=0 if tiny else 1000,
        log_every=5 if tiny else 100,
        precision="auto",
        device="auto",
    )
    p["average"]["last"] = 2 if tiny else 3
    p["translate"].update(precision="auto", device="auto")
    if tiny:
        p["data"]["demo"].update(train_pairs=2000, dev_pairs=40, test_pairs=40)
        p["tokenizer"]["vocab_size"] = 500
    return p


class StageError(RuntimeError):
    """A stage exited with an unexpected status (the message names it and its last line)."""


def _run_stage(name: str, work: Path, log, env: dict, timeout: float) -> int:
    """Run ``python -m stages.<name>`` in ``work``, its output to ``log``; its exit status."""
    log.write(f"\n== stage {name}\n")
    log.flush()
    r = subprocess.run(
        [sys.executable, "-m", f"stages.{name}"],
        cwd=work,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        timeout=timeout,
        check=False,
    )
    return r.returncode


def _train_for(work: Path, log, env: dict, seconds: float, timeout: float) -> dict:
    """The train stage, to its ``max_steps`` or stopped with SIGTERM ``seconds`` after it
    started, but not before its first checkpoint exists (with timer checkpoints off, a
    grid one that :mod:`aiayn.average` accepts). Returns the step it ended at, the
    precision it chose and whether it was stopped."""
    log.write("\n== stage train\n")
    log.flush()
    proc = subprocess.Popen(
        [sys.executable, "-m", "stages.train"],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    lines: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            lines.append(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    t0 = time.monotonic()
    ckpts = work / "data" / "checkpoints"
    stopped = False
    while proc.poll() is None:
        elapsed = time.monotonic() - t0
        if elapsed > timeout:
            proc.kill()
            proc.wait()
            raise StageError(f"train did not stop within {timeout:.0f} s")
        if not stopped and elapsed >= seconds and any(ckpts.glob("checkpoint_*.pt")):
            proc.send_signal(signal.SIGTERM)
            stopped = True
        time.sleep(0.2)
    reader.join(timeout=10)
    text = "".join(lines)
    ok = proc.returncode == 0 or (stopped and proc.returncode == 128 + signal.SIGTERM)
    if not ok:
        last = (text.strip().splitlines() or ["no output"])[-1][:300]
        raise StageError(f"train exited with status {proc.returncode}: {last}")
    step = re.findall(r"(?:stopped at step|training done: step) (\d+)", text)
    prec = re.findall(r"precision (\w+), accumulation", text)
    return {
        "steps": int(step[-1]) if step else None,
        "precision": prec[-1] if prec else None,
        "stopped": stopped,
        "seconds": time.monotonic() - t0,
    }


AFTER_TRAIN = 45.0  # seconds kept for average, translate and score at base dimensions


def run_pipeline(work: Path, params: dict, train_seconds: float, log_path: Path, deadline: float):
    """All stages in ``work`` (module doc); their output appended to ``log_path``. Training
    gets SIGTERM after ``train_seconds``, or earlier to leave :data:`AFTER_TRAIN` seconds
    before ``deadline`` (``time.monotonic()``). Returns ``{"seconds": {stage: s}, "train":
    {...}, "metrics": score's metrics.json}``."""
    import json

    import yaml

    work.mkdir(parents=True, exist_ok=True)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    from aiayn.config import load_params

    load_params(work / "params.yaml")  # a bad override fails here, with the key named
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    seconds: dict[str, float] = {}
    train: dict = {}
    with open(log_path, "a", encoding="utf-8") as log:
        for name in STAGES:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StageError(f"out of time before stage {name}")
            t = time.monotonic()
            if name == "train":
                stop = min(train_seconds, max(1.0, left - AFTER_TRAIN))
                train = {**_train_for(work, log, env, stop, left), "stop_after": stop}
            else:
                rc = _run_stage(name, work, log, env, left)
                if rc != 0:
                    raise StageError(f"stage {name} exited with status {rc} (see {log_path})")
            seconds[name] = round(time.monotonic() - t, 1)
    metrics = json.loads((work / "reports" / "metrics.json").read_text(encoding="utf-8"))
    return {"seconds": seconds, "train": train, "metrics": metrics}


def pipeline_figures(
    result: dict, params: dict, train_seconds: float, plan: str = ""
) -> list[dict]:
    """The figures of :func:`run_pipeline`'s result (module doc); ``plan``: how its steps
    were planned (for the notes)."""
    test, dev = result["metrics"]["test"], result["metrics"].get("dev", {})
    tr, m = result["train"], params["model"]
    secs = result["seconds"]
    dims = f"N={m['encoder_layers']}, d_model={m['d_model']}, d_ff={m['d_ff']}, h={m['n_heads']}"
    how = (
        f"demo corpus ({params['data']['demo']['train_pairs']:,} pairs, BPE "
        f"{params['tokenizer']['vocab_size']}), {dims}, {tr.get('precision')}, "
        f"{tr.get('steps')} steps of {params['train']['tokens_per_step']} tokens in "
        f"{secs.get('train', 0):.0f} s ({plan + '; ' if plan else ''}max_steps "
        f"{params['train']['max_steps']}, save_every {params['train']['save_every']}; stopped "
        f"by SIGTERM after {tr.get('stop_after', train_seconds):.0f} s: {tr.get('stopped')}), "
        "last "
        f"{params['average']['last']} grid checkpoints averaged, beam "
        f"{params['translate']['beam_size']}"
    )
    prec = tr.get("precision") if tr.get("precision") in ("fp32", "bf16", "fp16") else None

    def point(x: float) -> dict:
        return {"median": x, "min": x, "max": x}

    def fig(name: str, unit: str, value: float, notes: str) -> dict:
        return {
            "name": name,
            "unit": unit,
            "aiayn": point(float(value)),
            "peer": None,
            "peer_name": None,
            "ratio": None,
            "ratio_meaning": "",
            "notes": notes,
            "precision": prec,
        }

    return [
        fig(
            "pipeline: test sacreBLEU",
            "BLEU",
            test["sacrebleu"],
            f"{how}; test tokenized BLEU {test['bleu_tok']}, chrF {test['chrf']}, length ratio "
            f"{test.get('length_ratio')}; dev sacreBLEU {dev.get('sacrebleu')}; "
            f"{test.get('signature', '')}",
        ),
        fig(
            "pipeline: wall time, download to score",
            "s",
            sum(secs.values()),
            "per stage (s): " + ", ".join(f"{k} {v:.0f}" for k, v in secs.items()),
        ),
        fig("pipeline: training steps", "steps", tr.get("steps") or 0, how),
    ]
