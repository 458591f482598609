"""Table 3's model options: head sizes d_k / d_v independent of d_model / h (rows A-C) and
learned positions instead of sinusoids (row E).

Shapes, exact parameter counts, cached decoding equal to a full recompute, the defaults
unchanged bit for bit, and the learned tables trained, checkpointed, averaged and loaded.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from decode_fakes import assert_same_hypotheses
from test_model import TINY, V
from train_support import make_shards, tiny_params

from aiayn.config import ModelConfig, params_from_dict, to_dict
from aiayn.errors import ConfigError
from aiayn.model import Transformer, count_parameters
from aiayn.model_info import parameter_breakdown, parameter_formula
from aiayn.vocab import PAD

BASE = TINY  # 2 + 2 layers, d_model 32, 4 heads, no dropout, post-norm, tied
OPTIONS = {
    "B: smaller d_k": {"d_k": 2},  # d_v stays d_model / h = 8
    "A: one head": {"n_heads": 1, "d_k": 32, "d_v": 32},
    "A: many heads": {"n_heads": 16, "d_k": 2, "d_v": 2},
    "h does not divide d_model": {"n_heads": 3, "d_k": 5, "d_v": 7},
    "E: learned": {"positional": "learned"},
    "E: learned, pre-norm, untied, d_v": {
        "positional": "learned",
        "norm": "pre",
        "tie_embeddings": False,
        "d_v": 12,
    },
}
IDS = list(OPTIONS)

pytestmark = pytest.mark.usefixtures("one_thread")


def model_with(changes: dict, seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(dataclasses.replace(BASE, **changes), V).eval()


def tokens(B: int, T: int, seed: int, lengths: list[int] | None = None) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(4, V, (B, T), generator=g)
    for i, n in enumerate(lengths or []):
        x[i, n:] = PAD
    return x


@pytest.mark.parametrize("changes", OPTIONS.values(), ids=IDS)
def test_shapes_follow_the_head_sizes(changes):
    model = model_with(changes)
    cfg = model.cfg
    h, D = cfg.n_heads, cfg.d_model
    d_k, d_v = cfg.head_dims
    assert (d_k, d_v) == (changes.get("d_k", D // h), changes.get("d_v", D // h))
    for layer in model.decoder:
        assert layer.self_attn.qkv.weight.shape == (h * (2 * d_k + d_v), D)
        assert layer.self_attn.out.weight.shape == (D, h * d_v)
        assert layer.cross_attn.q.weight.shape == (h * d_k, D)
        assert layer.cross_attn.kv.weight.shape == (h * (d_k + d_v), D)
        assert layer.cross_attn.out.weight.shape == (D, h * d_v)
    src, tgt = tokens(3, 7, 0, lengths=[7, 4, 2]), tokens(3, 5, 1)
    with torch.no_grad():
        assert model(src, tgt).shape == (3, 5, V)
        enc = model.encode(src)
        assert enc.memory.shape == (3, 7, D)
        state = model.init_state(enc)
        k, v = state.cross_kv[0]
        assert k.shape == (3, h, 7, d_k) and v.shape == (3, h, 7, d_v)
        assert model.decode_step(tgt[:, 0], state).shape == (3, V)
        model.decode_step(tgt[:, 1], state)
        cache = state.self_kv[0]
        assert cache.k[:, :, : cache.length].shape == (3, h, 2, d_k)
        assert cache.v[:, :, : cache.length].shape == (3, h, 2, d_v)


@pytest.mark.parametrize("changes", OPTIONS.values(), ids=IDS)
def test_parameter_formula_is_exact(changes):
    cfg = dataclasses.replace(BASE, **changes)
    for vocab in (37, 1000):
        model = Transformer(cfg, vocab)
        total, trainable = count_parameters(model)
        assert total == trainable == parameter_formula(cfg, vocab)
        parts = parameter_breakdown(cfg, vocab)
        assert parts["total"] == total
        learned = (
            [model.src_positions, model.tgt_positions] if hasattr(model, "src_positions") else []
        )
        assert parts["positions"] == sum(p.numel() for p in learned)


@pytest.mark.parametrize("changes", OPTIONS.values(), ids=IDS)
def test_cached_decode_step_equals_full_recompute(changes):
    model = model_with(changes)
    src = tokens(4, 8, 0, lengths=[8, 6, 3, 8])
    tgt = tokens(4, 7, 1)
    with torch.no_grad():
        full = model.decode(tgt, model.encode(src))  # (B, T, V)
        for capacity in (1, 32):  # the cache grows past its capacity
            state = model.init_state(model.encode(src), capacity=capacity)
            steps = [model.decode_step(tgt[:, t], state) for t in range(tgt.size(1))]
            assert torch.allclose(torch.stack(steps, 1), full, atol=1e-5)


@pytest.mark.parametrize("changes", OPTIONS.values(), ids=IDS)
def test_beam_search_with_the_cache_equals_full_recompute(changes):
    """Beam search reorders the caches (in place, gathered, shrinking as sentences finish)
    and groups the beams of a sentence over one copy of its keys and values: with every
    option it finds what recomputing every prefix finds; the coverage penalty reads the
    cross-attention weights."""
    from aiayn.decode.search import search

    model = model_with(changes, seed=3)
    with torch.no_grad():  # sharper distributions: hypotheses of varied lengths
        for p in model.parameters():
            if p.dim() == 2 and p.size(0) == V:  # embeddings and an untied output projection
                p.mul_(3.0)
    src = tokens(5, 9, 0, lengths=[9, 7, 4, 9, 2])
    max_len = src.ne(PAD).sum(1) + 3
    kw = dict(beam_size=4, alpha=0.6, beta=0.3, nbest=2)
    cached = search(model, src, max_len, cache=True, **kw)
    full = search(model, src, max_len, cache=False, **kw)
    assert_same_hypotheses(cached, full)
    assert len({len(h.tokens) for x in cached for h in x}) > 1  # finishing at different steps


@pytest.mark.parametrize("changes", OPTIONS.values(), ids=IDS)
def test_padding_and_the_future_change_nothing(changes):
    model = model_with(changes)
    src, tgt = tokens(2, 6, 0, lengths=[6, 3]), tokens(2, 5, 1)
    padded = torch.cat([src, torch.zeros(2, 3, dtype=torch.long)], dim=1)
    later = tgt.clone()
    later[:, 3:] = tokens(2, 2, 9)
    with torch.no_grad():
        out = model(src, tgt)
        assert torch.allclose(model(padded, tgt), out, atol=1e-5)
        assert torch.allclose(model(src, later)[:, :3], out[:, :3], atol=1e-5)


def test_explicit_default_head_sizes_are_the_default_model_bit_for_bit():
    src, tgt = tokens(3, 7, 0, lengths=[7, 5, 2]), tokens(3, 6, 1)
    a, b = model_with({}), model_with({"d_k": 8, "d_v": 8})
    assert a.cfg.head_dims == b.cfg.head_dims == (8, 8)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    with torch.no_grad():
        assert torch.equal(a(src, tgt), b(src, tgt))


def test_learned_tables_replace_the_sinusoid_buffer_and_are_drawn_last():
    sinus, learned = model_with({}), model_with({"positional": "learned"})
    assert "positions" not in sinus.state_dict() and not hasattr(learned, "positions")
    names = {n for n, _ in learned.named_parameters()}
    assert {"src_positions", "tgt_positions"} <= names
    assert learned.src_positions.shape == learned.tgt_positions.shape == (64, 32)
    # every other weight is the sinusoidal model's: the tables are initialised after them
    s, w = sinus.state_dict(), learned.state_dict()
    assert all(torch.equal(s[k], w[k]) for k in s)
    std = learned.src_positions.detach().std().item()
    assert 0.8 * 32**-0.5 < std < 1.2 * 32**-0.5
    assert not torch.equal(learned.src_positions, learned.tgt_positions)


def test_learned_positions_are_used_where_they_apply():
    model = model_with({"positional": "learned"})
    src, tgt = tokens(2, 6, 0), tokens(2, 5, 1)
    with torch.no_grad():
        before = model(src, tgt)
        model.tgt_positions[3].add_(1.0)  # target position 3 only
        after = model(src, tgt)
        assert torch.equal(after[:, :3], before[:, :3])  # causal: earlier positions unchanged
        assert not torch.allclose(after[:, 3:], before[:, 3:])
        model.src_positions[0].add_(1.0)  # every target position reads the source
        assert not torch.allclose(model(src, tgt), after)


def test_learned_positions_get_gradients_where_sequences_reach():
    model = model_with({"positional": "learned"}).train()
    src, tgt = tokens(2, 6, 0), tokens(2, 5, 1)
    model(src, tgt).logsumexp(-1).mean().backward()
    g_src, g_tgt = model.src_positions.grad, model.tgt_positions.grad
    assert g_src[:6].abs().sum(-1).min() > 0 and g_tgt[:5].abs().sum(-1).min() > 0
    assert g_src[6:].abs().sum() == 0 and g_tgt[5:].abs().sum() == 0  # never seen positions
    table = model.src_positions.detach().clone()
    torch.optim.Adam(model.parameters(), lr=1e-3).step()
    assert not torch.equal(model.src_positions[:6], table[:6])


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"n_heads": 5}, r"model\.n_heads must divide model\.d_model=192; got 5 \(or set both"),
        ({"n_heads": 5, "d_k": 16}, r"model\.n_heads must divide model\.d_model=192; got 5"),
        ({"d_k": -1}, r"model\.d_k must be >= 0; got -1"),
        ({"positional": "rotary"}, r"model\.positional must be one of sinusoidal, learned"),
    ],
)
def test_bad_options_are_named(demo_params, changes, message):
    data = to_dict(demo_params)
    data["model"].update(changes)
    with pytest.raises(ConfigError, match=message):
        params_from_dict(data, "params.yaml")


def test_h_need_not_divide_d_model_when_both_head_sizes_are_set(demo_params):
    data = to_dict(demo_params)
    data["model"].update(n_heads=5, d_k=16, d_v=24)
    assert params_from_dict(data).model.head_dims == (16, 24)
    with pytest.raises(ConfigError, match="n_heads must divide"):
        Transformer(dataclasses.replace(BASE, n_heads=5, d_k=8), V)


def test_older_configs_and_fingerprints_are_unchanged_by_the_new_keys(tmp_path):
    """A checkpoint written before these keys existed stores a model_config without them:
    it loads as the defaults, and a default run's fingerprint still matches it."""
    from aiayn.checkpoint import training_fingerprint

    old = {k: v for k, v in to_dict(BASE).items() if k not in ("d_k", "d_v", "positional")}
    assert ModelConfig(**old) == BASE
    (tmp_path / "index.json").write_text("{}")
    (tmp_path / "tok.json").write_text("{}")
    params = tiny_params()
    _, inputs = training_fingerprint(params, tmp_path, tmp_path / "tok.json", 1)
    assert not {"d_k", "d_v", "positional"} & set(inputs["model"])
    learned = dataclasses.replace(params, model=dataclasses.replace(params.model, d_k=4))
    _, inputs = training_fingerprint(learned, tmp_path, tmp_path / "tok.json", 1)
    assert inputs["model"]["d_k"] == 4


# ----------------------------------------------------------------------------- pipeline


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 6-step run with learned positions and d_k != d_v, then averaged: the folder."""
    from aiayn.average import average_checkpoints
    from aiayn.config import AverageConfig

    root = tmp_path_factory.mktemp("learned")
    shards, tok = make_shards(root)
    params = tiny_params(model={"positional": "learned", "d_k": 4, "d_v": 12}, max_steps=6)
    from aiayn.train.trainer import run_training

    run_training(params, shards, tok, root / "ckpt", root / "live")
    average_checkpoints(AverageConfig(last=3), root / "ckpt", tok, root / "model")
    return root, params, tok


def test_learned_tables_are_trained_saved_averaged_and_loaded(trained):
    from aiayn.checkpoint import list_checkpoints, load_checkpoint
    from aiayn.decode.translator import Translator

    root, params, tok = trained
    ckpts = [load_checkpoint(p) for _, p in list_checkpoints(root / "ckpt")]
    assert [c["step"] for c in ckpts] == [2, 4, 6]
    torch.manual_seed(params.train.seed)  # the run's initial weights
    init = Transformer(params.model, ckpts[0]["vocab_size"]).state_dict()
    for name in ("src_positions", "tgt_positions"):
        assert not torch.equal(ckpts[-1]["model"][name], init[name])  # trained
        assert not torch.equal(ckpts[-1]["model"][name], ckpts[0]["model"][name])
    averaged = torch.load(root / "model" / "model.pt", weights_only=True)
    mean = sum(c["model"]["src_positions"] for c in ckpts) / 3
    assert torch.allclose(averaged["src_positions"], mean, atol=1e-7)
    meta = json.loads((root / "model" / "model.json").read_text())
    assert meta["model_config"]["positional"] == "learned" and meta["model_config"]["d_v"] == 12
    translator = Translator.load(root / "model", device="cpu")
    assert torch.equal(translator.model.src_positions.detach(), averaged["src_positions"])
    out = translator.translate(["the house", ""], params.translate)
    assert len(out) == 2 and out[1] == ""


def test_averaging_accepts_a_resumed_run_with_older_checkpoints(tmp_path):
    """Checkpoints before and after the new keys (same model) average together."""
    from aiayn.average import average_checkpoints
    from aiayn.config import AverageConfig

    model = Transformer(BASE, V).state_dict()
    new = to_dict(BASE)
    old = {k: v for k, v in new.items() if k not in ("d_k", "d_v", "positional")}
    (tmp_path / "ck").mkdir()
    for step, cfg in ((1, old), (2, new)):
        state = {"model": model, "step": step, "model_config": cfg, "vocab_size": V}
        torch.save(state, tmp_path / "ck" / f"checkpoint_{step:08d}.pt")
    (tmp_path / "tok.json").write_text("{}")
    meta = average_checkpoints(
        AverageConfig(last=2), tmp_path / "ck", tmp_path / "tok.json", tmp_path / "m"
    )
    assert meta["steps"] == [1, 2]
    other = dict(new, d_k=4)
    torch.save(
        {"model": model, "step": 3, "model_config": other, "vocab_size": V},
        tmp_path / "ck" / "checkpoint_00000003.pt",
    )
    with pytest.raises(Exception, match="model_config differs"):
        average_checkpoints(
            AverageConfig(last=2), tmp_path / "ck", tmp_path / "tok.json", tmp_path / "m"
        )
