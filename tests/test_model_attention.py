"""Transformer.capture_attention: the model hands back its own softmax weights, and the
normal path stays the fused kernel, bit for bit (except CPU inference with a few query rows,
where the explicit products are faster and equal up to float rounding)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_model import tiny, tokens

from aiayn.decode.search import beam_search
from aiayn.model import (
    EXPLICIT_MAX_QUERIES,
    attend,
    attend_with_weights,
    explicit_attention,
    few_query_attention,
)
from aiayn.vocab import PAD

pytestmark = pytest.mark.usefixtures("one_thread")

SRC_LENGTHS = [7, 4, 6]  # rows padded after these lengths


def _batch():
    src = tokens(3, 7, seed=1, lengths=SRC_LENGTHS)  # (3, 7)
    tgt = tokens(3, 5, seed=2)  # (3, 5)
    return src, tgt


def _steps(model, src, tgt):
    """decode_step over tgt (B, T): logits (B, T, V)."""
    state = model.init_state(model.encode(src))
    return torch.stack([model.decode_step(tgt[:, t], state) for t in range(tgt.size(1))], 1)


@pytest.mark.parametrize("causal", [False, True])
def test_attend_without_a_record_is_the_fused_kernel_bit_for_bit(causal):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 6, 8, generator=g) for _ in range(3))
    mask = None if causal else torch.tensor([[True] * 6, [True] * 4 + [False] * 2])[:, None, None]
    fused = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    assert torch.equal(attend(q, k, v, mask, causal, 0.0), fused)
    record: list[torch.Tensor] = []
    explicit = attend(q, k, v, mask, causal, 0.0, record)
    torch.testing.assert_close(explicit, fused, atol=1e-6, rtol=1e-5)
    (weights,) = record
    assert weights.shape == (2, 4, 6, 6) and weights.dtype == torch.float32
    torch.testing.assert_close(weights @ v, explicit)


@pytest.mark.parametrize("causal", [False, True])
def test_cpu_inference_with_few_queries_takes_the_explicit_products(causal):
    """Incremental decoding's shapes (1 or beam-many query rows) skip the fused kernel."""
    g = torch.Generator().manual_seed(0)
    for T, explicit in ((1, True), (EXPLICIT_MAX_QUERIES, True), (EXPLICIT_MAX_QUERIES + 1, False)):
        q, k, v = (torch.randn(2, 4, T, 8, generator=g) for _ in range(3))
        fused = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        with torch.no_grad():
            got = attend(q, k, v, None, causal, 0.0)
        if explicit:
            assert torch.equal(got, explicit_attention(q, k, v, None, causal, 0.0)[0])
            torch.testing.assert_close(got, fused, atol=1e-6, rtol=1e-5)
        else:
            assert torch.equal(got, fused)
        assert torch.equal(attend(q, k, v, None, causal, 0.0), fused)  # with grad: fused


def test_few_query_path_equals_the_explicit_products_bit_for_bit():
    """float32 decoding's attention (fewer operations) against explicit_attention, with a
    key mask: the same bits, and padded keys get no weight."""
    g = torch.Generator().manual_seed(1)
    q = torch.randn(3, 4, 4, 8, generator=g)
    k, v = (torch.randn(3, 4, 7, 8, generator=g) for _ in range(2))
    mask = torch.ones(3, 1, 1, 7, dtype=torch.bool)
    mask[0, ..., 5:] = False
    with torch.no_grad():
        got = few_query_attention(q, k, v, mask)
        assert torch.equal(got, explicit_attention(q, k, v, mask, False, 0.0)[0])
        assert torch.equal(attend(q, k, v, mask, False, 0.0), got)
        v[0, :, 5:] += 100.0  # a masked key's value changes nothing
        assert torch.equal(few_query_attention(q, k, v, mask)[0], got[0])


def test_outside_a_capture_nothing_changes_and_no_weights_are_computed(monkeypatch):
    model = tiny(norm="pre").eval()
    src, tgt = _batch()
    with torch.no_grad():
        before = model(src, tgt), _steps(model, src, tgt)
        with model.capture_attention():
            model(src, tgt)

        def refuse(*args):
            raise AssertionError("the normal path computed attention weights")

        monkeypatch.setattr("aiayn.model.attend_with_weights", refuse)
        after = model(src, tgt), _steps(model, src, tgt)
        hyps = beam_search(model, src, torch.tensor([6, 6, 6]), beam_size=3)
    assert torch.equal(before[0], after[0]) and torch.equal(before[1], after[1])
    assert all(hs for hs in hyps)
    modules = [m for m in model.modules() if hasattr(m, "record")]
    assert len(modules) == 2 + 2 * 2 and all(m.record is None for m in modules)


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_captured_weights_are_softmax_rows_over_the_allowed_keys(norm):
    model = tiny(norm=norm).eval()
    src, tgt = _batch()
    with torch.no_grad():
        plain = model(src, tgt)
        with model.capture_attention() as att:
            captured = model(src, tgt)
    torch.testing.assert_close(captured, plain, atol=1e-5, rtol=1e-5)  # same maths
    assert [len(calls) for calls in att.encoder + att.decoder + att.cross] == [1] * 6
    enc, dec, cross = att.encoder[0][0], att.decoder[1][0], att.cross[1][0]
    assert enc.shape == (3, 4, 7, 7) and dec.shape == (3, 4, 5, 5) and cross.shape == (3, 4, 5, 7)
    for w in (enc, dec, cross):
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]), atol=1e-6, rtol=0)
    pad = src.eq(PAD)[:, None, None, :]  # (B, 1, 1, S)
    assert enc.masked_select(pad).abs().max() == 0 and cross.masked_select(pad).max() == 0
    future = torch.ones(5, 5, dtype=torch.bool).triu(1)
    assert dec[..., future].max() == 0 and dec[..., ~future].min() > 0


def test_zero_queries_and_keys_attend_uniformly():
    """Known value: with W^Q = W^K = 0 every score is 0, so each row is 1 / (allowed keys)."""
    model = tiny(norm="post").eval()
    with torch.no_grad():
        for layer in model.encoder:
            layer.self_attn.qkv.weight[: 2 * 32].zero_()
            layer.self_attn.qkv.bias[: 2 * 32].zero_()
        src, _ = _batch()
        with model.capture_attention() as att:
            model.encode(src)
    weights = att.encoder[0][0]  # (B, h, S, S)
    for b, n in enumerate(SRC_LENGTHS):
        expected = torch.zeros(7)
        expected[:n] = 1 / n
        torch.testing.assert_close(weights[b], expected.expand(4, 7, 7), atol=1e-7, rtol=0)


def test_decoding_steps_capture_what_the_full_decode_computes():
    model = tiny(norm="pre").eval()
    src, tgt = _batch()
    with torch.no_grad():
        with model.capture_attention() as full:
            model(src, tgt)
        with model.capture_attention() as steps:
            _steps(model, src, tgt)
    for layer in range(2):
        assert len(steps.decoder[layer]) == len(steps.cross[layer]) == 5  # one per step
        for t in range(5):
            torch.testing.assert_close(
                steps.decoder[layer][t][:, :, 0], full.decoder[layer][0][:, :, t, : t + 1]
            )
            torch.testing.assert_close(
                steps.cross[layer][t][:, :, 0], full.cross[layer][0][:, :, t], atol=1e-6, rtol=0
            )


def test_under_bf16_autocast_the_weights_are_float32_softmax_rows():
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(1, 2, 4, 8, generator=g).bfloat16() for _ in range(3))
    record: list[torch.Tensor] = []
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attend_with_weights(q, k, v, None, True, 0.0, record)
    assert out.dtype == torch.bfloat16 and record[0].dtype == torch.float32
    torch.testing.assert_close(record[0].sum(-1), torch.ones(1, 2, 4), atol=1e-6, rtol=0)


def test_a_second_capture_at_once_is_refused():
    model = tiny()
    with model.capture_attention(), pytest.raises(RuntimeError, match="already active"):
        with model.capture_attention():
            pass
    with model.capture_attention():  # the first one cleaned up
        pass
