"""Sliding-window geometry shared by convolution and pooling everywhere: the kernels of
every backend, `nn.functional`, ONNX import, its resource limits and export (the Python
twin of shaders/window.wgsl). Written once, so the layers cannot disagree on a size."""

from __future__ import annotations


def conv_out_size(size: int, k: int, s: int, p: int, d: int, *, p_end: int | None = None,
                  ceil_mode: bool = False) -> int:
    """Output length of a window of k taps (dilation d) sliding with stride s over `size`
    samples padded by p before and `p_end` (default p) after.

    ceil_mode counts a last, partial window as PyTorch and ONNX do: it must start inside
    the input or the leading padding, never in the trailing one."""
    padded = size + p + (p if p_end is None else p_end)
    span = d * (k - 1) + 1
    if not ceil_mode:
        return (padded - span) // s + 1
    out = -(-(padded - span) // s) + 1
    if (out - 1) * s >= size + p:
        out -= 1
    return out


def ceil_extra(size: int, k: int, s: int, p: int, d: int, p_end: int | None = None) -> int:
    """Extra trailing padding that makes floor-mode windows produce ceil mode's count (the
    extra cells are padding: -inf for max pooling, not counted for averages)."""
    out = conv_out_size(size, k, s, p, d, p_end=p_end, ceil_mode=True)
    padded = size + p + (p if p_end is None else p_end)
    return max(0, (out - 1) * s + d * (k - 1) + 1 - padded)


def same_padding(size: int, k: int, s: int, d: int, upper: bool = True) -> tuple[int, int]:
    """(before, after) padding that gives ceil(size / s) outputs ("SAME"); an odd total puts
    the extra cell after (`upper`, PyTorch's and ONNX's SAME_UPPER) or before."""
    total = max(0, (-(-size // s) - 1) * s + d * (k - 1) + 1 - size)
    lo = total // 2 if upper else total - total // 2
    return lo, total - lo


def conv_transpose_out_size(size: int, k: int, s: int, p: int, d: int,
                            output_padding: int = 0) -> int:
    """Output length of a transposed convolution (the adjoint of conv_out_size): the input
    spread with stride s, each sample over k dilated taps, cropped by p on both sides."""
    return (size - 1) * s + d * (k - 1) + 1 - 2 * p + output_padding
