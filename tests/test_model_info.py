"""aiayn.model_info and ``aiayn model-info``: counts per part, FLOPs, the step-memory
estimate, checked against real modules, a FLOP counter and the tensors autograd saves."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from aiayn.cli import app
from aiayn.cli_util import run
from aiayn.config import ModelConfig
from aiayn.model import PRESETS, Transformer, count_parameters
from aiayn.model_info import (
    activation_bytes,
    describe_model,
    matmul_parameters,
    model_summary,
    parameter_breakdown,
    step_memory,
    train_flops,
    train_flops_per_token,
)

SMALL = ModelConfig(
    encoder_layers=2,
    decoder_layers=3,
    d_model=32,
    d_ff=48,
    n_heads=4,
    dropout=0.1,
    max_positions=64,
)
VARIANTS = [
    {},
    {"norm": "pre"},
    {"tie_embeddings": False, "activation_dropout": 0.1},
    # Table 3's options: head sizes (rows A-C) and learned positions (row E)
    {"n_heads": 1, "d_k": 32, "d_v": 32},
    {"d_k": 4},
    {"n_heads": 3, "d_k": 5, "d_v": 12},
    {"positional": "learned", "norm": "pre"},
]


pytestmark = pytest.mark.usefixtures("one_thread")


def _numel(*modules) -> int:
    return sum(p.numel() for m in modules if m is not None for p in m.parameters())


@pytest.mark.parametrize("changes", VARIANTS)
def test_parameter_breakdown_matches_the_module(changes):
    cfg = dataclasses.replace(SMALL, **changes)
    model = Transformer(cfg, 70)
    parts = parameter_breakdown(cfg, 70)
    if cfg.tie_embeddings:
        assert parts["embeddings"] == _numel(model.embed) and parts["output_projection"] == 0
    else:
        assert parts["embeddings"] == _numel(model.src_embed, model.tgt_embed)
        assert parts["output_projection"] == _numel(model.out_proj)
    learned = cfg.positional == "learned"
    assert parts["positions"] == (
        model.src_positions.numel() + model.tgt_positions.numel() if learned else 0
    )
    assert parts["encoder"] == _numel(model.encoder, model.encoder_norm)
    assert parts["decoder"] == _numel(model.decoder, model.decoder_norm)
    assert parts["total"] == count_parameters(model)[0]


@pytest.mark.parametrize("changes", VARIANTS)
def test_train_flops_equal_a_flop_counter(changes):
    """Forward + backward of the model, attention through the math backend so that its
    matrix products are counted too: exactly train_flops on the padded shapes."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    cfg = dataclasses.replace(SMALL, **changes)
    V, B, S, T = 70, 3, 7, 5
    model = Transformer(cfg, V).train()
    src, tgt = torch.randint(4, V, (B, S)), torch.randint(4, V, (B, T))
    src[1, 4:] = 0
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(src, tgt).sum().backward()
    assert counter.get_total_flops() == train_flops(cfg, V, B * S, B * T, S, T)


def test_train_flops_per_token_of_base():
    base = PRESETS["base"]
    assert matmul_parameters(base) == 44_040_192
    # 6 x matmul params + 6 D V + 12 D (N_enc S + N_dec (T + S)) with S = T = 30
    expected = 6 * 44_040_192 + 6 * 512 * 37000 + 12 * 512 * (6 * 30 + 6 * 60)
    assert train_flops_per_token(base, 37000, seq_len=30) == expected == 381_222_912
    # twice the source tokens per target token adds one more encoder pass
    more = train_flops_per_token(base, 37000, seq_len=30, src_per_tgt=2.0)
    assert more > expected


def _saved_bytes(model, src, tgt, V, precision) -> int:
    """Bytes of the distinct non-parameter tensors autograd saves for backward (loss included)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = model(src, tgt)
            F.cross_entropy(logits.float().flatten(0, 1), tgt.flatten(), label_smoothing=0.1)
    return sum(seen.values())


@pytest.mark.parametrize(
    "changes", [c for c in VARIANTS if c.get("d_k", 0) == c.get("d_v", 0)]
)  # d_k != d_v: torch's fused CPU kernel does not apply (see activation_bytes)
def test_activation_estimate_matches_saved_tensors(changes):
    cfg = dataclasses.replace(SMALL, **changes)
    V, B, S, T = 300, 6, 20, 18
    torch.manual_seed(0)
    model = Transformer(cfg, V).train()
    src, tgt = torch.randint(4, V, (B, S)), torch.randint(4, V, (B, T))
    got = _saved_bytes(model, src, tgt, V, "fp32")
    assert activation_bytes(cfg, V, B * S, B * T, "fp32", "cpu") == pytest.approx(got, rel=0.01)
    # bf16 autocast: half-precision activations plus autocast's cached weight copies
    got = _saved_bytes(model, src, tgt, V, "bf16")
    est = activation_bytes(cfg, V, B * S, B * T, "bf16", "cpu") + 2 * count_parameters(model)[0]
    assert est == pytest.approx(got, rel=0.05)
    # on CUDA dropout keeps 1-byte masks instead of full-size noise
    assert activation_bytes(cfg, V, 100, 100, "fp32", "cuda") < activation_bytes(
        cfg, V, 100, 100, "fp32", "cpu"
    )


def test_step_memory_parts():
    cfg = PRESETS["base"]
    P = 63_082_496
    fp32 = step_memory(cfg, 37000, 4096, "fp32")
    assert (fp32["weights"], fp32["gradients"], fp32["adam"]) == (4 * P, 4 * P, 8 * P)
    assert fp32["half_weights"] == 0
    bf16 = step_memory(cfg, 37000, 4096, "bf16")
    assert bf16["half_weights"] == 2 * P and bf16["activations"] < fp32["activations"]
    for m in (fp32, bf16):
        assert m["total"] == sum(v for k, v in m.items() if k != "total")
    assert step_memory(cfg, 37000, 8192)["activations"] == 2 * fp32["activations"]
    # the logits the trainer holds through backward: one (B, T, V) at the compute precision
    assert (fp32["logits"], bf16["logits"]) == (4 * 4096 * 37000, 2 * 4096 * 37000)


def test_step_memory_logits_are_alive_through_the_trainers_backward():
    """step_memory counts the (B, T, V) logits because the trainer's forward_backward keeps
    them referenced while backward runs; if that changes, so must the estimate."""
    import weakref

    from aiayn.batching import Batch
    from aiayn.config import TrainConfig
    from aiayn.precision import select_precision
    from aiayn.train.trainer import Trainer

    V = 50
    model = Transformer(SMALL, V)
    fp32 = select_precision("fp32", "cpu")
    trainer = Trainer(
        model, TrainConfig(precision="fp32"), SMALL.d_model, torch.device("cpu"), fp32
    )
    logits: list = []
    forward = model.forward

    def keep_a_weakref(src, tgt_in):
        out = forward(src, tgt_in)  # (B, T, V)
        logits.append(weakref.ref(out))
        return out

    model.forward = keep_a_weakref
    alive: list[bool] = []
    # the shared embedding's gradient is the last one backward computes (the graph's input end)
    model.embed.weight.register_hook(lambda g: alive.append(logits[-1]() is not None))
    src, tgt = torch.randint(4, V, (3, 7)), torch.randint(4, V, (3, 6))
    trainer.train_step([Batch(src, tgt[:, :-1], tgt[:, 1:], 21, 15)])
    assert alive == [True]
    assert logits[-1]() is None  # freed once the step is over


def test_describe_model_and_summary():
    cfg = dataclasses.replace(PRESETS["base"], tie_embeddings=False)
    text = describe_model(cfg, 37000, max_tokens=4096, precision="bf16")
    parts = parameter_breakdown(cfg, 37000)
    for key in ("embeddings", "encoder", "decoder", "output_projection", "total"):
        assert f"{parts[key]:,}" in text
    assert "estimate" in text and "bf16" in text and "GFLOP" in text
    assert "Memory" not in describe_model(cfg, 37000)
    s = model_summary(cfg, 37000, 4096)
    json.dumps(s)  # JSON-able
    assert s["parameters"]["total"] == parameter_breakdown(cfg, 37000)["total"]


# ----------------------------------------------------------------------------- command


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, ["model-info", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_command_counts_equal_the_module(demo_params, root, monkeypatch):
    out = _cli("--preset", "demo", "--vocab-size", "3000")
    model = Transformer(PRESETS["demo"], 3000)
    total, trainable = count_parameters(model)
    assert f"Parameters: {total:,} total, {trainable:,} trainable" in out
    # a pre-norm stack's final LayerNorm counts with its stack
    enc = _numel(model.encoder) + (_numel(model.encoder_norm) if model.encoder_norm else 0)
    dec = _numel(model.decoder) + (_numel(model.decoder_norm) if model.decoder_norm else 0)
    assert re.search(rf"encoder +{enc:,}\n", out) and re.search(rf"decoder +{dec:,}\n", out)
    assert f"{model.embed.weight.numel():,}" in out
    assert "max_tokens=4,096" in out  # the default budget

    monkeypatch.chdir(root)
    out = _cli("--params", "params.yaml")  # vocabulary and max_tokens from the params file
    V = demo_params.tokenizer.vocab_size
    total, _ = count_parameters(Transformer(demo_params.model, V))
    assert f"{total:,} total" in out and f"vocabulary {V:,}" in out
    assert f"max_tokens={demo_params.train.max_tokens:,}" in out


def test_command_base_at_37000():
    out = _cli("--preset", "base", "--vocab-size", "37000", "--max-tokens", "2048")
    total, _ = count_parameters(Transformer(PRESETS["base"], 37000))
    assert total == 63_082_496 and "63,082,496 total" in out
    assert "0.381 GFLOP" in out and "max_tokens=2,048" in out


def test_command_counts_table_3_options_exactly(demo_params, tmp_path):
    """``aiayn model-info --params`` on a params file using the new options."""
    import yaml

    from aiayn.config import to_dict

    data = to_dict(demo_params)
    data["model"].update(n_heads=3, d_k=40, d_v=24, positional="learned")
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    cfg = dataclasses.replace(demo_params.model, n_heads=3, d_k=40, d_v=24, positional="learned")
    V = demo_params.tokenizer.vocab_size
    model = Transformer(cfg, V)
    out = _cli("--params", str(path))
    assert f"{count_parameters(model)[0]:,} total" in out
    assert "h=3 (d_k=40, d_v=24)" in out and "learned positions" in out
    tables = model.src_positions.numel() + model.tgt_positions.numel()
    assert re.search(rf"positions \(source \+ target\) +{tables:,}\n", out)
    data = json.loads(_cli("--params", str(path), "--json"))
    assert data["parameters_by_part"]["positions"] == tables
    assert data["flops"]["train_per_tgt_token"] == train_flops_per_token(cfg, V)


def test_command_json():
    data = json.loads(_cli("--preset", "big", "--precision", "bf16", "--json"))
    assert data["parameters"]["total"] == 214_245_376
    assert data["memory"]["precision"] == "bf16"
    assert data["memory"]["bytes"] == step_memory(PRESETS["big"], 37000, 4096, "bf16")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--preset", "base", "--params", "params.yaml"], "either --preset or --params"),
        (["--preset", "huge"], "unknown preset 'huge'; choose one of base, big, demo"),
        (["--params", "nowhere.yaml"], "nowhere.yaml: params file not found"),
    ],
)
def test_command_errors_are_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        run(app, ["model-info", *args])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
