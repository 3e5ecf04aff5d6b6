"""Metrics, the evaluation harness, result tables and performance benchmarks (`python -m benchmarks`)."""
