"""uvssm: build, synthesise and benchmark datasets for restoring user videos shared on social media."""

__version__ = "0.1.0"
