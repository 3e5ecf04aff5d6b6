"""Operators the architectures need that PyTorch does not have: deformable convolution."""

from models.ops.deform_conv import deform_conv2d

__all__ = ["deform_conv2d"]
