"""Training: configs, losses, the learning-rate schedule, patch sampling, and the loop (CPU, CUDA, DDP)."""
