"""The Transformer (aiayn.model): masks, padding, the KV cache, tying, presets, counts, init,
dropout, and a tiny model that learns to reverse sequences."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from aiayn.config import ModelConfig
from aiayn.errors import AiaynError
from aiayn.model import (
    PAD,
    PRESETS,
    Transformer,
    count_parameters,
    dropout,
    sinusoid_table,
)
from aiayn.model_info import parameter_formula

V = 50
TINY = ModelConfig(
    encoder_layers=2,
    decoder_layers=2,
    d_model=32,
    d_ff=64,
    n_heads=4,
    dropout=0.0,
    attention_dropout=0.0,
    activation_dropout=0.0,
    norm="post",
    tie_embeddings=True,
    max_positions=64,
)
NORMS = ["post", "pre"]


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(seed: int = 0, **changes) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(dataclasses.replace(TINY, **changes), V)


def tokens(B: int, T: int, seed: int, lengths: list[int] | None = None) -> torch.Tensor:
    """Random ids in [4, V) (B, T); row i padded after lengths[i]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(4, V, (B, T), generator=g)
    if lengths is not None:
        for i, n in enumerate(lengths):
            x[i, n:] = PAD
    return x


# ----------------------------------------------------------------------------- presets, counts


def test_presets_are_table_3():
    base, big = PRESETS["base"], PRESETS["big"]
    assert (base.encoder_layers, base.decoder_layers, base.d_model, base.d_ff, base.n_heads) == (
        6,
        6,
        512,
        2048,
        8,
    )
    assert base.dropout == 0.1 and base.norm == "post" and base.tie_embeddings
    assert (big.encoder_layers, big.decoder_layers, big.d_model, big.d_ff, big.n_heads) == (
        6,
        6,
        1024,
        4096,
        16,
    )
    assert big.dropout == 0.3 and big.norm == "post" and big.tie_embeddings
    assert base == ModelConfig()  # the config defaults are Transformer base


def test_demo_preset_is_the_params_yaml_model_section(demo_params):
    assert PRESETS["demo"] == demo_params.model, "update PRESETS['demo'] to params.yaml's model"


def test_paper_parameter_counts_at_37000():
    base = parameter_formula(PRESETS["base"], 37000)
    big = parameter_formula(PRESETS["big"], 37000)
    assert base == 63_082_496  # paper: 65M (its vocabulary and counting differ slightly)
    assert big == 214_245_376  # paper: 213M
    assert 62e6 < base < 66e6 and 212e6 < big < 216e6


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"norm": "pre"},
        {"tie_embeddings": False},
        {"tie_embeddings": False, "norm": "pre", "encoder_layers": 1, "decoder_layers": 3},
        {"d_model": 24, "n_heads": 3, "d_ff": 40, "encoder_layers": 3, "decoder_layers": 1},
    ],
)
def test_parameter_formula_equals_module_count(changes):
    cfg = dataclasses.replace(TINY, **changes)
    for vocab in (37, 1000):
        model = Transformer(cfg, vocab)
        total, trainable = count_parameters(model)
        assert total == trainable == parameter_formula(cfg, vocab)


def test_count_parameters_trainable_and_shared():
    model = tiny()
    total, _ = count_parameters(model)
    model.embed.weight.requires_grad_(False)
    assert count_parameters(model) == (total, total - V * TINY.d_model)


# ----------------------------------------------------------------------------- pieces


def test_sinusoid_table_known_values():
    pe = sinusoid_table(50, 8)
    assert pe.shape == (50, 8)
    assert torch.equal(pe[0], torch.tensor([0.0, 1.0] * 4))
    assert pe[1, 0].item() == pytest.approx(math.sin(1.0))
    assert pe[1, 1].item() == pytest.approx(math.cos(1.0))
    assert pe[7, 2].item() == pytest.approx(math.sin(7 / 10000 ** (2 / 8)))
    assert pe[7, 7].item() == pytest.approx(math.cos(7 / 10000 ** (6 / 8)))
    assert sinusoid_table(3, 5).shape == (3, 5)  # odd widths work


def test_positions_are_a_buffer_not_a_parameter():
    model = tiny()
    assert model.positions.shape == (TINY.max_positions, TINY.d_model)
    assert "positions" not in dict(model.named_parameters())
    assert "positions" not in model.state_dict()  # deterministic: not saved in checkpoints


def test_initialisation():
    torch.manual_seed(0)
    cfg = dataclasses.replace(PRESETS["demo"], tie_embeddings=False)
    model = Transformer(cfg, 2000)
    D = cfg.d_model
    for emb in (model.src_embed, model.tgt_embed):
        assert emb.weight[PAD].abs().sum() == 0
        assert emb.weight[1:].std().item() == pytest.approx(D**-0.5, rel=0.02)
    assert model.out_proj.weight.std().item() == pytest.approx(D**-0.5, rel=0.02)
    attn = model.encoder[0].self_attn
    bound = math.sqrt(6 / (D + D))  # Xavier for each D x D block of the fused projection
    for block in attn.qkv.weight.split(D):
        assert block.abs().max() <= bound
        assert block.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.03)
    w1 = model.encoder[0].ffn.w1.weight  # (d_ff, D)
    assert w1.std().item() == pytest.approx(math.sqrt(2 / (D + cfg.d_ff)), rel=0.03)
    assert attn.qkv.bias.abs().sum() == 0 and model.decoder[0].norm3.weight.eq(1).all()


def test_n_heads_must_divide_d_model():
    with pytest.raises(AiaynError, match="n_heads"):
        Transformer(dataclasses.replace(TINY, n_heads=5), V)


def test_too_long_sequences_are_a_clear_error():
    model = tiny().eval()
    with pytest.raises(AiaynError, match="max_positions=64"):
        model(tokens(1, 65, 0), tokens(1, 3, 1))
    state = model.init_state(model.encode(tokens(1, 5, 0)))
    state.length = 64
    with pytest.raises(AiaynError, match="max_positions"):
        model.decode_step(torch.tensor([5]), state)


def test_cpu_dropout_rate_scale_and_seed():
    x = torch.ones(200_000)
    torch.manual_seed(3)
    y = dropout(x, 0.1, True)
    kept = y != 0
    assert kept.float().mean().item() == pytest.approx(0.9, abs=0.003)
    assert torch.allclose(y[kept], torch.full_like(y[kept], 65536 / (65536 - 6554)))
    assert y.mean().item() == pytest.approx(1.0, abs=0.005)  # unbiased
    torch.manual_seed(3)
    assert torch.equal(dropout(x, 0.1, True), y)  # same seed, same mask
    assert not torch.equal(dropout(x, 0.1, True), y)
    assert dropout(x, 0.1, False) is x and dropout(x, 0.0, True) is x
    z = dropout(torch.ones(3, 5, 7), 0.5, True)  # odd sizes, shape kept
    assert z.shape == (3, 5, 7) and set(z.unique().tolist()) <= {0.0, 2.0}


# ----------------------------------------------------------------------------- masking


@pytest.mark.parametrize("norm", NORMS)
def test_causal_a_future_target_token_never_changes_earlier_outputs(norm):
    model = tiny(norm=norm).train()  # train mode, dropout 0: the training graph
    src = tokens(3, 9, 0, lengths=[9, 6, 4])
    tgt = tokens(3, 8, 1)
    base = model(src, tgt)
    for j in (2, 5, 7):
        changed = tgt.clone()
        changed[:, j] = (changed[:, j] + 7 - 4) % (V - 4) + 4
        out = model(src, changed)
        assert torch.allclose(out[:, :j], base[:, :j], atol=1e-5), f"position < {j} changed"
        assert not torch.allclose(out[:, j:], base[:, j:], atol=1e-3)  # the test can fail


@pytest.mark.parametrize("norm", NORMS)
def test_padding_invariance(norm):
    model = tiny(norm=norm).eval()
    src = tokens(3, 7, 0, lengths=[7, 5, 2])
    tgt = tokens(3, 6, 1, lengths=[6, 4, 6])
    out = model(src, tgt)
    src_padded = F.pad(src, (0, 5), value=PAD)
    tgt_padded = F.pad(tgt, (0, 3), value=PAD)
    for s, t in ((src_padded, tgt), (src, tgt_padded), (src_padded, tgt_padded)):
        assert torch.allclose(model(s, t)[:, :6], out, atol=1e-5)
    # a sentence alone equals the same sentence inside a padded batch
    alone = model(src[2:3, :2], tgt[2:3])
    assert torch.allclose(alone, out[2:3], atol=1e-5)
    # padding really is masked: a real token in its place changes the output
    leaked = src.clone()
    leaked[2, 2:] = 9
    assert not torch.allclose(model(leaked, tgt)[2], out[2], atol=1e-3)


def test_no_nan_anywhere_even_for_an_all_padding_source():
    model = tiny().train()
    src = tokens(3, 6, 0, lengths=[6, 1, 0])  # last row: padding only
    out = model(src, tokens(3, 5, 1, lengths=[5, 2, 0]))
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# ----------------------------------------------------------------------------- KV cache


def _stepwise(model, src, tgt, capacity=32):
    state = model.init_state(model.encode(src), capacity=capacity)
    return torch.stack([model.decode_step(tgt[:, t], state) for t in range(tgt.size(1))], 1)


@pytest.mark.parametrize("norm", NORMS)
def test_cached_decode_step_equals_full_decode(norm):
    model = tiny(norm=norm).eval()
    src = tokens(4, 8, 0, lengths=[8, 6, 3, 8])
    tgt = tokens(4, 7, 1)
    with torch.no_grad():
        full = model.decode(tgt, model.encode(src))  # (B, T, V)
        for capacity in (1, 3, 32):  # the cache grows past its capacity
            assert torch.allclose(_stepwise(model, src, tgt, capacity), full, atol=1e-5)


def test_decode_step_advances_the_position():
    model = tiny().eval()
    with torch.no_grad():
        state = model.init_state(model.encode(tokens(2, 5, 0)))
        assert state.length == 0 and state.batch_size == 2
        model.decode_step(torch.tensor([1, 1]), state)
        model.decode_step(torch.tensor([7, 8]), state)
        assert state.length == 2 and state.self_kv[0].length == 2


@pytest.mark.parametrize(
    "index, beams",
    [
        ([2, 0, 3, 1], 1),  # beam reordering: a permutation
        ([3, 1], 1),  # finished sentences dropped
        ([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3], 3),  # expansion to B * beam
        ([1, 1, 2], 1),  # a beam copied twice, others dropped
        ([3, 3, 0, 0], 2),  # two sentences kept, two beams each
    ],
)
def test_reorder_keeps_the_cache_consistent(index, beams):
    model = tiny().eval()
    src = tokens(4, 8, 0, lengths=[8, 5, 3, 7])
    tgt = tokens(4, 6, 1)
    idx = torch.tensor(index)
    k = 3  # steps before the reorder
    with torch.no_grad():
        state = model.init_state(model.encode(src))
        before = [model.decode_step(tgt[:, t], state) for t in range(k)]
        assert state.reorder(idx) is state and state.batch_size == len(index)
        # the encoder side is kept once per sentence, shared by its beams
        assert state.beams == beams and state.src_pad.size(0) == len(index) // beams
        assert all(kv[0].size(0) == len(index) // beams for kv in state.cross_kv)
        after = [model.decode_step(tgt[idx, t], state) for t in range(k, tgt.size(1))]
        got = torch.stack(after, 1)
        want = model.decode(tgt[idx], model.encode(src[idx]))[:, k:]
        assert torch.allclose(got, want, atol=1e-5)
        prefix = model.decode(tgt[idx, :k], model.encode(src[idx]))
        assert torch.allclose(torch.stack(before, 1)[idx], prefix, atol=1e-5)


def test_reorder_of_beams_within_their_sentences_keeps_sharing():
    """Beam search's later reorders pick rows within each sentence's run: still shared, and
    each row continues the token history of the row it was copied from."""
    model = tiny().eval()
    src = tokens(2, 6, 0, lengths=[6, 4])
    y0, y1, y2 = tokens(2, 1, 1)[:, 0], tokens(6, 1, 2)[:, 0], tokens(6, 1, 3)[:, 0]
    sentence = torch.tensor([0, 0, 0, 1, 1, 1])  # of each decoder row after the expansion
    perm = torch.tensor([2, 0, 0, 5, 3, 3])  # beams reshuffled within their sentences
    with torch.no_grad():
        state = model.init_state(model.encode(src))
        model.decode_step(y0, state)
        state.reorder(sentence)
        model.decode_step(y1, state)
        state.reorder(perm)
        assert state.beams == 3 and state.src_pad.size(0) == 2
        got = model.decode_step(y2, state)  # (6, V)
        history = torch.stack([y0[sentence][perm], y1[perm], y2], 1)  # (6, 3)
        want = model.decode(history, model.encode(src[sentence]))[:, -1]  # (6, V)
    assert torch.allclose(got, want, atol=1e-5)


def test_cross_attention_over_one_copy_per_sentence_equals_repeated_keys():
    """n sentences' keys/values, n b query rows (b beams each): as if repeated per beam."""
    model = tiny().eval()
    attn = model.decoder[0].cross_attn
    g = torch.Generator().manual_seed(3)
    n, b, T, S = 3, 4, 2, 5
    memory = torch.randn(n, S, TINY.d_model, generator=g)
    x = torch.randn(n * b, T, TINY.d_model, generator=g)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2, [True] * 4 + [False]])
    mask = mask[:, None, None]  # (n, 1, 1, S)
    with torch.no_grad():
        kv = attn.project_kv(memory)  # 2 x (n, h, S, d_k)
        repeated = tuple(t.repeat_interleave(b, 0) for t in kv)  # 2 x (n b, h, S, d_k)
        attn.record = grouped_weights = []
        grouped = attn(x, kv, mask)
        attn.record = repeated_weights = []
        want = attn(x, repeated, mask.repeat_interleave(b, 0))
        attn.record = None
    assert torch.allclose(grouped, want, atol=1e-6)
    (wg,), (wr,) = grouped_weights, repeated_weights
    assert wg.shape == wr.shape == (n * b, TINY.n_heads, T, S)
    assert torch.allclose(wg, wr, atol=1e-6)


def test_encoder_out_reorder():
    model = tiny().eval()
    src = tokens(3, 6, 0, lengths=[6, 2, 4])
    with torch.no_grad():
        enc = model.encode(src)
        idx = torch.tensor([2, 2, 0])
        sub = enc.reorder(idx)
        ref = model.encode(src[idx])
    assert torch.allclose(sub.memory, ref.memory, atol=1e-6)
    assert torch.equal(sub.src_pad, ref.src_pad) and torch.equal(sub.mask, ref.mask)


# ----------------------------------------------------------------------------- tying


def test_three_way_tying_shares_one_matrix():
    model = tiny(tie_embeddings=True)
    assert not hasattr(model, "src_embed") and not hasattr(model, "out_proj")
    w = model.embed.weight
    assert model._src_embedding().weight is w and model._tgt_embedding().weight is w
    assert model.output_weight().data_ptr() == w.data_ptr()
    assert sum(p is w for p in model.parameters()) == 1
    # gradient reaches the one matrix through the output projection alone ...
    src, tgt = tokens(2, 5, 0), tokens(2, 4, 1)
    logits = model(src, tgt)
    logits[:, :, 3].sum().backward()  # id 3 never occurs in the inputs
    assert w.grad[3].abs().sum() > 0
    # ... and through the source embedding alone, and the target embedding alone
    src, tgt = src.clamp(max=40), tgt.clamp(max=40)
    for side in ("src", "tgt"):
        model.zero_grad()
        s2, t2 = src.clone(), tgt.clone()
        (s2 if side == "src" else t2)[0, 1] = 45
        model(s2, t2)[:, :, 10].sum().backward()
        assert w.grad[45].abs().sum() > 0, side
        assert w.grad[44].abs().sum() == 0  # untouched rows get no gradient


def test_untied_has_three_matrices():
    model = tiny(tie_embeddings=False)
    mats = [model.src_embed.weight, model.tgt_embed.weight, model.out_proj.weight]
    assert len({m.data_ptr() for m in mats}) == 3
    src, tgt = tokens(2, 5, 0), tokens(2, 4, 1)
    model(src, tgt).sum().backward()
    assert all(m.grad is not None and m.grad.abs().sum() > 0 for m in mats)


# ----------------------------------------------------------------------------- norms


def test_pre_and_post_norm_differ_and_pre_has_final_norms():
    post, pre = tiny(seed=1, norm="post"), tiny(seed=1, norm="pre")
    assert post.encoder_norm is None and post.decoder_norm is None
    assert pre.encoder_norm is not None and pre.decoder_norm is not None
    src, tgt = tokens(2, 5, 0), tokens(2, 4, 1)
    with torch.no_grad():
        assert not torch.allclose(post(src, tgt), pre(src, tgt), atol=1e-3)
        # post-norm: every encoder output row is layer-normalised
        mem = post.encode(src).memory
        assert torch.allclose(mem.mean(-1), torch.zeros(2, 5), atol=1e-5)


@pytest.mark.parametrize("norm", NORMS)
def test_both_norms_train(norm):
    model = tiny(seed=2, norm=norm, dropout=0.1).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    src = tokens(8, 6, 0)
    tgt_in = torch.cat([torch.ones(8, 1, dtype=torch.long), src[:, :-1]], 1)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(src, tgt_in).flatten(0, 1), src.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


# ----------------------------------------------------------------------------- learning


def test_tiny_model_learns_to_reverse_sequences():
    """Reverse sequences of 3-6 tokens over a 16-symbol alphabet; greedy decoding with the
    KV cache on unseen sequences must be almost always right (~0.99 over seeds)."""
    torch.manual_seed(0)
    cfg = dataclasses.replace(TINY, encoder_layers=1, decoder_layers=1)
    vocab, L = 20, 7  # ids: 0 pad, 1 <s>, 2 </s>, 3 unused, 4..19 symbols; 6 symbols + </s>
    model = Transformer(cfg, vocab)
    g = torch.Generator().manual_seed(1)

    def batch(n):
        lens = torch.randint(3, L, (n,), generator=g)  # (n,)
        src = torch.randint(4, vocab, (n, L), generator=g)
        src = src.masked_fill(torch.arange(L)[None] >= lens[:, None], PAD)
        tgt_out = torch.zeros_like(src)
        for i, n_i in enumerate(lens.tolist()):
            tgt_out[i, :n_i] = src[i, :n_i].flip(0)
        rows = torch.arange(n)
        src[rows, lens] = tgt_out[rows, lens] = 2  # </s>
        tgt_in = torch.cat([torch.ones(n, 1, dtype=torch.long), tgt_out[:, :-1]], 1)
        return src, tgt_in.masked_fill(tgt_in.eq(2), PAD), tgt_out

    steps = 300
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=steps, pct_start=0.1)
    model.train()
    for _ in range(steps):
        src, tgt_in, tgt_out = batch(32)
        logits = model(src, tgt_in)  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()

    model.eval()
    src, _, tgt_out = batch(200)
    with torch.no_grad():
        state = model.init_state(model.encode(src))
        tok = torch.ones(200, dtype=torch.long)  # <s>
        out = []
        for _ in range(L):
            tok = model.decode_step(tok, state).argmax(-1)  # greedy
            out.append(tok)
    hyp = torch.stack(out, 1)  # (200, L)
    real = tgt_out.ne(PAD)
    accuracy = (hyp.eq(tgt_out) & real).sum().item() / real.sum().item()
    assert accuracy > 0.95, f"token accuracy {accuracy:.3f}"


# ----------------------------------------------------------------------------- imports


def test_model_imports_without_dvc_dvclive_sacremoses():
    code = (
        "import sys\n"
        "for m in ('dvc', 'dvclive', 'sacremoses', 'tokenizers'): sys.modules[m] = None\n"
        "import aiayn.model, aiayn.model_info\n"
        "print(aiayn.model_info.parameter_formula(aiayn.model.PRESETS['base'], 37000))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "63082496"
