"""Sliding-window geometry shared by convolution and pooling on every backend (the Python
twin of shaders/window.wgsl), written once."""

from __future__ import annotations


def conv_out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    """Output length of a window of k taps (dilation d) sliding with stride s over `size`
    samples padded by p on both sides."""
    return (size + 2 * p - d * (k - 1) - 1) // s + 1
