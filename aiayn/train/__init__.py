"""Training: the loop, loss, learning-rate schedule, curves, signals, distributed workers."""
