"""Training: loss, learning-rate schedule, checkpoints, precision, distributed, the loop."""
