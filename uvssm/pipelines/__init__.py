"""Pipelines: build, synth-reds, simulate, train, restore, the sample and the demo. Each returns data and
reports progress through a `uvssm.base.progress.Progress` callback; none prints."""
