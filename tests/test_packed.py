"""Inference products on pre-packed weights (aiayn.packed): same results as F.linear, taken
only where they apply, rebuilt when the weight changes."""

import pytest
import torch
import torch.nn.functional as F

from aiayn import packed
from aiayn.decode.search import beam_search
from aiayn.model import PRESETS, Transformer
from aiayn.vocab import EOS

needs_onednn = pytest.mark.skipif(
    not packed.available(), reason="this PyTorch build's oneDNN has no packed linear operator"
)


def _layer(n_in=24, n_out=40, bias=True, seed=0):
    torch.manual_seed(seed)
    return packed.Linear(n_in, n_out, bias=bias)


@needs_onednn
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("shape", [(1, 24), (7, 24), (3, 5, 24), (2, 1, 24)])
def test_packed_product_equals_f_linear(bias, relu, shape):
    layer = _layer(bias=bias)
    x = torch.randn(*shape)
    with torch.inference_mode():
        got = layer(x, relu=relu)
        want = F.linear(x, layer.weight, layer.bias)
        want = F.relu(want) if relu else want
    assert layer.pack._packed is not None  # the packed path ran
    assert got.shape == (*shape[:-1], 40)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@needs_onednn
def test_non_contiguous_input():
    layer = _layer()
    x = torch.randn(24, 6).t()  # (6, 24), column-major
    with torch.no_grad():
        torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias))
    assert layer.pack._packed is not None


@needs_onednn
def test_packed_copy_follows_in_place_weight_updates():
    layer = _layer()
    x = torch.randn(4, 24)
    with torch.no_grad():
        layer(x)
        first = layer.pack._packed
        layer(x)
        assert layer.pack._packed is first  # unchanged weight: packed once
        layer.weight.mul_(-2.0)  # as an optimizer step or load_state_dict would
        torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias))
        assert layer.pack._packed is not first
        layer.load_state_dict(_layer(seed=1).state_dict())
        torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias))


def test_training_and_other_dtypes_use_f_linear():
    layer = _layer()
    x = torch.randn(4, 24)
    y = layer(x, relu=True)  # autograd recording: plain F.linear, gradients flow
    y.sum().backward()
    assert layer.weight.grad is not None
    assert layer.pack._packed is None
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(x).dtype == torch.bfloat16  # autocast keeps its casts
    with torch.no_grad():
        assert layer.double()(x.double()).dtype == torch.float64
    assert layer.pack._packed is None


def test_switched_off_or_unavailable_falls_back(monkeypatch):
    layer = _layer()
    x = torch.randn(4, 24)
    monkeypatch.setattr(packed, "available", lambda: False)
    with torch.no_grad():
        torch.testing.assert_close(
            layer(x, relu=True), F.relu(F.linear(x, layer.weight, layer.bias))
        )
    assert layer.pack._packed is None
    monkeypatch.undo()
    monkeypatch.setattr(packed, "enabled", False)
    with torch.no_grad():
        layer(x)
    assert layer.pack._packed is None


def test_state_dict_has_no_packed_copies():
    model = Transformer(PRESETS["demo"], 50).eval()
    keys = set(model.state_dict())
    with torch.inference_mode():
        model.encode(torch.tensor([[5, 6, EOS]]))
    assert set(model.state_dict()) == keys


@needs_onednn
def test_beam_search_same_with_and_without_packing(monkeypatch):
    torch.manual_seed(3)
    model = Transformer(PRESETS["demo"], 60).eval()
    g = torch.Generator().manual_seed(3)
    src = torch.randint(4, 60, (5, 9), generator=g)
    src[:, -1] = EOS
    max_len = torch.full((5,), 12)
    on = beam_search(model, src, max_len, beam_size=4)
    assert model.output_pack._packed is not None
    monkeypatch.setattr(packed, "enabled", False)
    off = beam_search(model, src, max_len, beam_size=4)
    assert [h[0].tokens for h in on] == [h[0].tokens for h in off]
    for a, b in zip(on, off, strict=True):
        assert a[0].score == pytest.approx(b[0].score, abs=1e-4)
