"""Linear layers on pre-packed weights for float32 inference on a CPU.

A matrix product on a CPU first rearranges its weight into the blocked layout its kernel
reads; ``F.linear`` does that at every call. oneDNN (bundled with PyTorch) can do it once
(``torch.ops.mkldnn._reorder_linear_weight``) and then multiply against the packed copy
(``torch.ops.mkldnn._linear_pointwise``), the way CTranslate2 and PyTorch's own inductor
(``freezing``) run inference. Beam search multiplies the same weights by a few hundred rows
at every step, where packing saves 10-30 % of the product's time (more for the 37k-word
output projection at base dims) on a CPU whose oneDNN uses AVX-512: a whole demo-dims decode
ran 1.15x as fast; under AVX2 the gain was within noise (1.00, 0.94);
``python -m bench --only decode`` measures it side by side.

:func:`linear` is ``F.linear`` with that fast path, taken only where it gives the same
result (up to float rounding) and cannot interfere: no autograd recording (``no_grad`` or
``inference_mode``), float32 CPU tensors, no autocast, not inside ``torch.compile``, and a
PyTorch build whose oneDNN has the two operators (checked once, by a trial product).
Everything else (training, GPUs, bf16/fp16) is plain ``F.linear``.

The packed copy lives in a :class:`PackCache` beside the weight and is rebuilt whenever the
weight changes: it is keyed by the tensor's storage, shape and version counter, which every
in-place update (an optimizer step, ``load_state_dict``, ``copy_``) increments. It costs one
more copy of the weights in memory while in use.
"""

from __future__ import annotations

import functools

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

# Set to False to run every product through F.linear (tests, A/B measurements).
enabled = True


@functools.cache
def available() -> bool:
    """Whether this PyTorch build can multiply by a packed weight (oneDNN's two operators
    exist and a trial product matches ``F.linear``)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        with torch.inference_mode():
            x = torch.linspace(-1.0, 1.0, 6).view(2, 3)
            w = torch.linspace(-0.5, 0.5, 12).view(4, 3)
            b = torch.linspace(0.0, 0.3, 4)
            packed = torch.ops.mkldnn._reorder_linear_weight(w, 2)
            y = torch.ops.mkldnn._linear_pointwise(x, packed, b, "none", [], "")
            return bool(torch.allclose(y, F.linear(x, w, b), atol=1e-5))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


def applies(x: Tensor, weight: Tensor) -> bool:
    """Whether ``linear(x, weight, ...)`` takes the packed path (see the module docstring)."""
    return (
        enabled
        and not torch.is_grad_enabled()
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and weight.device.type == "cpu"
        and not torch.is_autocast_enabled("cpu")
        and torch.backends.mkldnn.enabled
        and not torch.compiler.is_compiling()
        and available()
    )


class PackCache:
    """The packed copy of one weight, rebuilt when the weight changes."""

    # Rows the packing is tuned for: a hint only (any number of rows works, and speed was
    # the same for hints of 64 to 1024 at demo dims).
    ROWS_HINT = 256

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._packed: Tensor | None = None

    def get(self, weight: Tensor) -> Tensor:
        """The packed form of ``weight`` (N, K), packing it again only if it changed."""
        key = (weight.untyped_storage().data_ptr(), weight.storage_offset(), weight.shape)
        key += (weight.stride(), weight._version)
        if key != self._key or self._packed is None:
            self._packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), self.ROWS_HINT)
            self._key = key
        return self._packed

    def clear(self) -> None:
        """Drop the packed copy (its memory)."""
        self._key = self._packed = None


def linear(
    x: Tensor, weight: Tensor, bias: Tensor | None, cache: PackCache, relu: bool = False
) -> Tensor:
    """``F.linear(x, weight, bias)`` (then ReLU if ``relu``): x (..., K), weight (N, K),
    bias (N,) or None -> (..., N), on the packed weight in ``cache`` where it applies."""
    if not applies(x, weight):
        y = F.linear(x, weight, bias)
        return F.relu(y) if relu else y
    *lead, K = x.shape
    y = torch.ops.mkldnn._linear_pointwise(
        x.reshape(-1, K), cache.get(weight), bias, "relu" if relu else "none", [], ""
    )  # (rows, N)
    return y.view(*lead, y.size(-1))


class Linear(nn.Linear):
    """``nn.Linear`` whose inference products use a packed weight (:func:`linear`); the same
    parameters, state dict and training behaviour."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pack = PackCache()

    def forward(self, x: Tensor, relu: bool = False) -> Tensor:
        """x (..., in_features) -> (..., out_features); ``relu``: ReLU fused into the product."""
        return linear(x, self.weight, self.bias, self.pack, relu)
