"""The learning-rate schedule of equation (3), paper section 5.3.

    lrate = lr_scale * d_model^-0.5 * min(step^-0.5, step * warmup_steps^-1.5)

``step`` counts optimizer steps from 1 (the first update uses step 1, never 0). The rate rises
linearly for ``warmup_steps`` steps, peaks at ``lr_scale * (d_model * warmup_steps)^-0.5``
and then decays with the inverse square root of the step. Transformer base (d_model 512,
warmup 4000) peaks at about 6.99e-4.
"""

from __future__ import annotations


def noam_lr(step: int, d_model: int, warmup_steps: int, lr_scale: float = 1.0) -> float:
    """The learning rate for optimizer step ``step`` (1-based)."""
    if step < 1:
        raise ValueError(f"step counts from 1; got {step}")
    return lr_scale * d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5)


def set_lr(optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group of ``optimizer``."""
    for group in optimizer.param_groups:
        group["lr"] = lr
