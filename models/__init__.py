"""Restoration architectures (VOTES and the Table-2 baselines), their ops and training."""
