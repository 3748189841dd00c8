"""Channels-last NumPy kernels of the CPU backend: convolution, batch norm, max pooling.

Why channels-last. In an NCHW array a pixel's channels lie H*W floats apart, so im2col
gathers single floats and a convolution's GEMM (pixels x channels) comes out in the wrong
order and must be transposed back. With the channels innermost (NHWC):

- im2col is a strided copy whose inner runs are kW*C contiguous floats (`Patches`, built
  in cache-sized blocks);
- the GEMM `patches @ W` writes the output directly in NHWC order, bias added in place;
- batch-norm statistics are column sums of a (pixels, C) matrix;
- a pooling tap is a strided view with C contiguous floats per pixel.

The arrays keep their NCHW *shape*: a channels-last array is the view
`buffer.transpose(0, 3, 1, 2)` of an NHWC buffer, so every other op (NumPy works on any
strides) and every caller still see an ordinary (N, C, H, W) tensor. NumPy's ufuncs keep
their inputs' memory order, so ReLU, a residual add, dropout ... stay channels-last
between the layers; only a reshape that mixes channels with pixels (nn.Flatten) copies
back to NCHW order. An input that is not channels-last (the data batch) is converted once,
in the same copy that pads it.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import cpu_parallel as parallel
from . import cpu_winograd as winograd
from .window import conv_out_size

Pair = tuple[int, int]


def nhwc(x: np.ndarray) -> np.ndarray:
    """The (N, H, W, C) view of an NCHW-shaped array; a copy only if x is not channels-last."""
    v = x.transpose(0, 2, 3, 1)
    return v if v.flags.c_contiguous else np.ascontiguousarray(v)


def is_channels_last(x: np.ndarray) -> bool:
    return x.ndim == 4 and x.transpose(0, 2, 3, 1).flags.c_contiguous


class Wide:
    """A channels-last (pixels, C) matrix seen as (pixels / k, k * C) rows of k pixels.

    Why: NumPy runs a per-channel operation on (M, C) -- x - mean[c], x * scale[c], a
    column sum -- as M inner loops of only C elements (C = 16 ... 128 here), and pays
    its loop overhead per row. On rows of k*C ~ 2048 floats with the per-channel vector
    tiled k times the same work runs 1.5-2x faster, and a column sum ~10x faster
    (measured on 131072 x 32: x * v 1.97 -> 1.33 ms, x.sum(0) 3.2 -> 0.33 ms)."""

    WIDTH = 2048  # floats per row to aim for

    def __init__(self, m: np.ndarray) -> None:
        rows, self.c = m.shape
        self.k = math.gcd(rows, max(1, self.WIDTH // self.c))
        self.m = m.reshape(rows // self.k, self.k * self.c)

    def of(self, m: np.ndarray) -> np.ndarray:
        """Another (pixels, C) matrix of the same shape, seen the same way."""
        return m.reshape(self.m.shape)

    def tile(self, v: np.ndarray) -> np.ndarray:
        """A per-channel vector repeated for the k pixels of a row."""
        return np.tile(v, self.k)

    def colsum(self, m: np.ndarray | None = None) -> np.ndarray:
        """Per-channel sums of this matrix (or of `m`, seen the same way): a BLAS
        vector-matrix product with ones, about 2x faster than `sum(axis=0)` (measured on
        131072 x 32: 1.29 -> 0.64 ms)."""
        m = self.m if m is None else m
        return (np.ones(len(m), dtype=m.dtype) @ m).reshape(self.k, self.c).sum(axis=0)

    def dot(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Per-channel sums of a * b (wide views), with no product array."""
        return np.einsum("ij,ij->j", a, b).reshape(self.k, self.c).sum(axis=0)


def _padded(x: np.ndarray, pad: Pair, value: float = 0.0) -> np.ndarray:
    """NHWC copy of NCHW-shaped x with `value` borders: layout change and padding in one
    pass (no copy at all without padding when x is already channels-last)."""
    ph, pw = pad
    if (ph, pw) == (0, 0):
        return nhwc(x)
    n, c, h, w = x.shape
    out = np.empty((n, h + 2 * ph, w + 2 * pw, c), dtype=x.dtype)
    out[:, :ph] = value
    out[:, ph + h:] = value
    out[:, ph: ph + h, :pw] = value
    out[:, ph: ph + h, pw + w:] = value
    out[:, ph: ph + h, pw: pw + w] = x.transpose(0, 2, 3, 1)
    return out


class Patches:
    """im2col of a padded NHWC input, built in blocks of whole images, never whole.

    Why blocks: the full patch matrix (N*Ho*Wo, kH*kW*C) is 9x the input (75 MB for a
    16-channel 32x32 batch of 128); writing it to memory and reading it back for the GEMM
    is memory-bound. A block of ~2048 rows (a few images) is built and multiplied while it
    is in cache; the weight gradient rebuilds the blocks from the kept padded input (the
    kept state is the input, not the 9x matrix). Each block row is one output pixel's
    window in (tap row, tap column, channel) order."""

    ROWS = 2048  # output pixels per block (measured: 1024-4096 alike, 8192 slower)

    def __init__(self, xp: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair,
                 out_hw: Pair) -> None:
        n, _, _, c = xp.shape
        sn, sh, sw, sc = xp.strides
        (kh, kw), (ho, wo) = kernel, out_hw
        self.xp = xp  # referenced by the strided view below
        self.win = as_strided(xp, (n, ho, wo, kh, kw, c),
                              (sn, sh * stride[0], sw * stride[1], sh * dilation[0],
                               sw * dilation[1], sc), writeable=False)
        self.pixels, self.k = ho * wo, kh * kw * c
        self.step = max(1, self.ROWS // self.pixels)  # images per block

    def ranges(self) -> list[tuple[int, int]]:
        """(first image, last image + 1) of each block."""
        n = self.win.shape[0]
        return [(i, min(n, i + self.step)) for i in range(0, n, self.step)]

    def matrix(self, i: int, j: int) -> np.ndarray:
        """The patch matrix of images i..j-1 (a copy: the im2col of one block)."""
        return self.win[i:j].reshape(-1, self.k)


def _wmat(w: np.ndarray) -> np.ndarray:
    """(C_out, C, kH, kW) weight as the (kH*kW*C, C_out) matrix matching `Patches`."""
    co, c, kh, kw = w.shape
    return w.transpose(2, 3, 1, 0).reshape(kh * kw * c, co)


def _tap_range(size: int, out: int, offset: int, stride: int) -> tuple[slice, slice] | None:
    """For one kernel tap at `offset` (= tap * dilation - pad) along an axis: the output
    positions o whose input o * stride + offset lies inside [0, size), and those inputs."""
    lo = max(0, -(offset // stride))  # ceil(-offset / stride)
    hi = min(out, (size - 1 - offset) // stride + 1)
    if hi <= lo:
        return None
    first = lo * stride + offset
    return slice(lo, hi), slice(first, first + (hi - lo - 1) * stride + 1, stride)


class _Tiles:
    """What a Winograd convolution's weight gradient needs: its transformed input tiles."""

    __slots__ = ("v",)

    def __init__(self, v: np.ndarray) -> None:
        self.v = v


def _winograd(x_shape: tuple, w_shape: tuple, stride: Pair, dilation: Pair) -> bool:
    """3x3, stride 1, undilated, and a shape where Winograd beats im2col (its rule)."""
    return (tuple(w_shape[2:]) == (3, 3) and stride == (1, 1) and dilation == (1, 1)
            and winograd.pays(x_shape[0], w_shape[1], w_shape[0], *x_shape[2:]))


class _Winners:
    """What max pooling's gradient needs on a channels-last input: the padded NHWC input
    and the NHWC output, and the window geometry."""

    __slots__ = ("xp", "best", "geometry")

    def __init__(self, xp: np.ndarray, best: np.ndarray, geometry: tuple) -> None:
        self.xp, self.best, self.geometry = xp, best, geometry


class _Phases:
    """What a 2x2 stride-2 max pooling's gradient needs: which of the 4 phases (pixel
    (2i + a, 2j + b) is phase 2a + b) won each output, one byte per output value."""

    __slots__ = ("idx", "shape")

    def __init__(self, idx: np.ndarray, shape: tuple) -> None:
        self.idx, self.shape = idx, shape


def _phases(x: np.ndarray, kernel: Pair, stride: Pair, pad: Pair, dilation: Pair) -> bool:
    """2x2 windows, stride 2, that tile the input (most CNNs' pooling)."""
    return (tuple(kernel) == tuple(stride) == (2, 2) and tuple(pad) == (0, 0)
            and tuple(dilation) == (1, 1) and x.shape[2] % 2 == 0 and x.shape[3] % 2 == 0)


def _phase_views(a: np.ndarray) -> list[np.ndarray]:
    """The 4 phases of NHWC `a` (a view each): a[:, a::2, b::2] for (a, b) in row-major order."""
    n, h, w, c = a.shape
    a6 = a.reshape(n, h // 2, 2, w // 2, 2, c)
    return [a6[:, :, i, :, j] for i in (0, 1) for j in (0, 1)]


def _phase_max(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2x2 max pooling of NHWC x and its winning phase. A later phase takes over only
    where it is strictly greater, so the first maximum in row-major order wins, as in the
    general path and PyTorch; as the phase number only grows, 'take over' is a maximum of
    bytes, not a masked store."""
    n, h, w, c = x.shape
    best = np.empty((n, h // 2, w // 2, c), dtype=x.dtype)
    idx = np.zeros(best.shape, dtype=np.uint8)

    def part(r: slice) -> None:  # images in parts on the threads (cpu_parallel)
        taps, b, ix = _phase_views(x[r]), best[r], idx[r]
        np.copyto(b, taps[0])
        better = np.empty(b.shape, dtype=bool)
        for k, tap in enumerate(taps[1:], 1):
            np.greater(tap, b, out=better)
            np.maximum(b, tap, out=b)
            np.maximum(ix, better.view(np.uint8) * np.uint8(k), out=ix)
    parallel.map_slices(n, h * w * c, part, grain=parallel.PASS_GRAIN)  # NumPy passes only
    return best, idx


def _phase_max_grad(g: np.ndarray, k: _Phases) -> np.ndarray:
    """Each phase of the input gradient is gy where that phase won, else 0: 4 strided
    stores that tile the input, so nothing is zeroed first and there is no scatter."""
    gx = np.empty(k.shape, dtype=g.dtype)

    def part(r: slice) -> None:  # images in parts on the threads (cpu_parallel)
        hit = np.empty(k.idx[r].shape, dtype=bool)
        for phase, view in enumerate(_phase_views(gx[r])):
            np.multiply(g[r], np.equal(k.idx[r], phase, out=hit), out=view)
    parallel.map_slices(len(gx), gx[0].size, part, grain=parallel.PASS_GRAIN)  # passes only
    return gx


def _pool_taps(xp: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair, out_hw: Pair):
    """Each kernel tap of padded NHWC `xp` as an (N, Ho, Wo, C) strided view: a plain
    slice with steps (a view like as_strided's, but about ten times cheaper to make, which
    is most of a pooling layer's time on one image)."""
    (ho, wo), (sh, sw) = out_hw, stride
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            r, q = i * dilation[0], j * dilation[1]
            yield xp[:, r: r + sh * (ho - 1) + 1: sh, q: q + sw * (wo - 1) + 1: sw]


class ChannelsLastKernels:
    """Mixed into `CpuBackend` (before `NumpyKernels`): the fast kernels named above.
    Batch norm and max pooling take this path for channels-last input (what the
    convolution returns) and defer to `NumpyKernels` otherwise."""

    @staticmethod
    def _gx_by_conv(c: int, co: int) -> bool:
        """Whether a stride-1 input gradient is cheaper as a convolution of gy (its im2col
        has 9*C_out floats per pixel) than as col2im (9*C floats, in runs of C).
        Measured (batch 128, 3x3, ms): C=16->32 at 32x32 53 vs 69; 32->32 at 16x16 18 vs
        24; 32->64 32 vs 32; 64->128 at 8x8 23 vs 18."""
        return c <= 16 or (c <= 32 and co <= c)

    # -- convolution (groups=1) ----------------------------------------------------------
    def conv2d_nhwc(self, x, w, bias, stride: Pair, pad: Pair, dilation: Pair, keep: bool):
        """(y channels-last, what the weight gradient needs if `keep` else None): Winograd
        F(2x2, 3x3) where it pays (cpu_winograd.py), else y = patches @ W + bias, one GEMM
        per block of patches, written straight into y."""
        if _winograd(x.shape, w.shape, stride, dilation):
            y, v = winograd.conv3x3(x, w, bias, pad, keep)
            return y.transpose(0, 3, 1, 2), (_Tiles(v) if keep else None)
        n, _, h, wd = x.shape
        co, _, kh, kw = w.shape
        ho = conv_out_size(h, kh, stride[0], pad[0], dilation[0])
        wo = conv_out_size(wd, kw, stride[1], pad[1], dilation[1])
        patches = Patches(_padded(x, pad), (kh, kw), stride, dilation, (ho, wo))
        wm = _wmat(w)
        y = np.empty((n * ho * wo, co), dtype=np.result_type(x.dtype, w.dtype))
        blocks, rows = patches.ranges(), ho * wo

        def block(k: int, slot: int) -> None:  # blocks of images on the threads
            i, j = blocks[k]
            yb = y[i * rows: j * rows]
            np.matmul(patches.matrix(i, j), wm, out=yb)
            if bias is not None:  # the fused bias: in place on the GEMM output
                yw = Wide(yb)
                yw.m += yw.tile(bias)
        parallel.run(len(blocks), block)
        return y.reshape(n, ho, wo, co).transpose(0, 3, 1, 2), (patches if keep else None)

    def conv2d_nhwc_grad(self, gy, cols, w, x_shape, stride: Pair, pad: Pair, dilation: Pair,
                         need_x: bool, need_w: bool, need_b: bool):
        """(gx, gw, gb), each None unless needed. gw = gy^T @ patches, summed over the
        forward's patch blocks (`cols`, rebuilt from its padded input); gx = col2im(gy @
        W^T), a strided add per kernel tap, or a convolution of gy (see below)."""
        co, c, kh, kw = w.shape
        g2 = nhwc(gy).reshape(-1, co)
        gb = Wide(g2).colsum() if need_b else None
        if isinstance(cols, _Tiles) or (not need_w and _winograd(x_shape, w.shape, stride,
                                                                 dilation)):
            gx, gw = winograd.conv3x3_grad(gy, w, x_shape, pad, need_x,
                                           cols.v if need_w else None)
            return (None if gx is None else gx.transpose(0, 3, 1, 2)), gw, gb
        gw = None
        if need_w:  # a partial sum per group of blocks (cpu_parallel: thread-independent)
            blocks, pix = cols.ranges(), cols.pixels

            def group(g: range) -> np.ndarray:
                gwm = np.zeros((co, kh * kw * c), dtype=gy.dtype)
                for i, j in blocks[g.start: g.stop]:
                    gwm += g2[i * pix: j * pix].T @ cols.matrix(i, j)
                return gwm
            parts = parallel.split(len(blocks), pix * cols.k)
            gwm = parallel.total(parallel.map_ranges(parts, group))
            gw = np.ascontiguousarray(gwm.reshape(co, kh, kw, c).transpose(0, 3, 1, 2))
        gx = None
        q = [(k - 1) * d - p for k, d, p in zip((kh, kw), dilation, pad)]
        if need_x and stride == (1, 1) and min(q) >= 0 and self._gx_by_conv(c, co):
            # stride 1: gx is the convolution of gy with the flipped, channel-transposed
            # kernel, padded by (k - 1) * d - p: an im2col + GEMM of gy. Cheaper than the
            # col2im below while C is small (its strided adds touch C floats at a time)
            wf = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
            gx = self.conv2d_nhwc(gy, wf, None, (1, 1), tuple(q), dilation, False)[0]
        elif need_x:  # col2im, in blocks of images as the forward's patches
            n, _, h, wd = x_shape
            ho, wo = gy.shape[2], gy.shape[3]
            wt = _wmat(w).T
            gxh = np.zeros((n, h, wd, c), dtype=gy.dtype)
            taps = [(i, j, rows, cols_) for i in range(kh) for j in range(kw)
                    if (rows := _tap_range(h, ho, i * dilation[0] - pad[0], stride[0]))
                    and (cols_ := _tap_range(wd, wo, j * dilation[1] - pad[1], stride[1]))]
            step = max(1, Patches.ROWS // (ho * wo))
            starts = range(0, n, step)

            def block(k: int, slot: int) -> None:  # blocks of images on the threads
                b0 = starts[k]
                b1 = min(n, b0 + step)
                gcols = (g2[b0 * ho * wo: b1 * ho * wo] @ wt).reshape(b1 - b0, ho, wo, kh, kw, c)
                part = gxh[b0:b1]
                for i, j, rows, cols_ in taps:
                    part[:, rows[1], cols_[1]] += gcols[:, rows[0], cols_[0], i, j]
            parallel.run(len(starts), block)
            gx = gxh.transpose(0, 3, 1, 2)
        return gx, gw, gb

    # -- batch norm over (N, H, W) of a channels-last array -------------------------------
    def batch_norm_train(self, x, gamma, beta, axes, eps: float):
        if tuple(axes) != (0, 2, 3) or not is_channels_last(x):
            return super().batch_norm_train(x, gamma, beta, axes, eps)
        n, c, h, w = x.shape
        x2 = Wide(nhwc(x).reshape(-1, c))  # (pixels, C) as wide rows, a view
        m = n * h * w
        # one pass for the statistics: var = E[x^2] - mean^2, both sums read x only, and
        # normalise + affine fused as y = x * scale + shift: 4 passes, one array. Where the
        # mean dwarfs the spread, both forms cancel away float32 digits (y by ~|mean|/std
        # ulps): then the statistics and y are computed around the mean (5 passes). Each
        # pass runs on parts of rows on the threads, one partial sum per part (cpu_parallel)
        rows, width = x2.m.shape
        sums = parallel.map_slices(rows, width, lambda r: (x2.colsum(x2.m[r]),
                                                            x2.dot(x2.m[r], x2.m[r])))
        mean = parallel.total([a for a, _ in sums]) / m
        var = np.maximum(parallel.total([b for _, b in sums]) / m - mean * mean, 0)
        centred = bool(np.any(var < 1e-2 * mean * mean))
        y = np.empty_like(x2.m)
        if centred:
            tm = x2.tile(mean)

            def centre(r: slice) -> np.ndarray:
                np.subtract(x2.m[r], tm, out=y[r])
                return x2.dot(y[r], y[r])  # no squared temporary
            var = parallel.total(parallel.map_slices(rows, width, centre)) / m
        invstd = (1.0 / np.sqrt(var + eps)).astype(x.dtype, copy=False)
        scale = (invstd * gamma).astype(x.dtype, copy=False)
        ts = x2.tile(scale)
        if centred:
            tb = x2.tile(beta)

            def affine(r: slice) -> None:
                y[r] *= ts
                y[r] += tb
        else:
            tb = x2.tile((beta - mean * scale).astype(x.dtype, copy=False))

            def affine(r: slice) -> None:
                np.multiply(x2.m[r], ts, out=y[r])
                y[r] += tb
        parallel.map_slices(rows, width, affine)
        return (y.reshape(n, h, w, c).transpose(0, 3, 1, 2), mean.astype(x.dtype, copy=False),
                invstd)

    def batch_norm_grad(self, gy, x, gamma, mean, invstd, axes):
        if tuple(axes) != (0, 2, 3) or not is_channels_last(x):
            return super().batch_norm_grad(gy, x, gamma, mean, invstd, axes)
        n, c, h, w = x.shape
        x2 = Wide(nhwc(x).reshape(-1, c))
        g2 = x2.of(nhwc(gy))
        m = n * h * w
        rows, width = x2.m.shape
        sums = parallel.map_slices(rows, width, lambda r: (x2.colsum(g2[r]),
                                                            x2.dot(g2[r], x2.m[r])))
        gbeta = parallel.total([a for a, _ in sums])
        # sum(gy * xhat) = invstd * (sum(gy * x) - mean * sum(gy)): no xhat array
        ggamma = (parallel.total([b for _, b in sums]) - mean * gbeta) * invstd
        # gx = gamma * invstd * (gy - gbeta / m - xhat * ggamma / m)
        #    = x * a + gy * k + b, per channel: three passes and one temporary
        k = gamma * invstd
        a = -(invstd * ggamma / m) * k
        ta = x2.tile(a.astype(x.dtype, copy=False))
        tb = x2.tile((-k * gbeta / m - mean * a).astype(x.dtype, copy=False))
        tk = x2.tile(k.astype(x.dtype, copy=False))
        gx = np.empty_like(x2.m)

        def part(r: slice) -> None:
            np.multiply(x2.m[r], ta, out=gx[r])
            gx[r] += tb
            gx[r] += np.multiply(g2[r], tk)
        parallel.map_slices(rows, width, part)
        return (gx.reshape(n, h, w, c).transpose(0, 3, 1, 2),
                ggamma.astype(gamma.dtype, copy=False), gbeta)

    # -- max pooling ----------------------------------------------------------------------
    def maxpool2d(self, x, kernel: Pair, stride: Pair, pad: Pair, dilation: Pair,
                  keep: bool = True):
        """The maximum over strided NHWC tap views (C contiguous floats per pixel). For
        2x2 stride-2 windows the winning phase is kept (one byte per output, see
        `_phase_max`); otherwise no argmax array: the gradient finds the winning taps again
        by comparing the padded input (kept, a reference when there is no padding) with
        the output."""
        if not is_channels_last(x):
            return super().maxpool2d(x, kernel, stride, pad, dilation)
        if keep and _phases(x, kernel, stride, pad, dilation):
            x4 = nhwc(x)
            best, idx = _phase_max(x4)
            return best.transpose(0, 3, 1, 2), _Phases(idx, x4.shape)
        n, c, h, w = x.shape
        ho = conv_out_size(h, kernel[0], stride[0], pad[0], dilation[0])
        wo = conv_out_size(w, kernel[1], stride[1], pad[1], dilation[1])
        xp = _padded(x, pad, -np.inf)
        taps = list(_pool_taps(xp, kernel, stride, dilation, (ho, wo)))
        best = np.empty(taps[0].shape, dtype=x.dtype)

        def part(r: slice) -> None:  # images in parts on the threads (cpu_parallel)
            np.copyto(best[r], taps[0][r])
            for tap in taps[1:]:
                np.maximum(best[r], tap[r], out=best[r])
        parallel.map_slices(n, ho * wo * c * len(taps), part)
        return best.transpose(0, 3, 1, 2), _Winners(xp, best, (kernel, stride, dilation, pad))

    def maxpool2d_values(self, x, kernel: Pair, stride: Pair, pad: Pair, dilation: Pair):
        if not is_channels_last(x):
            return super().maxpool2d_values(x, kernel, stride, pad, dilation)
        return self.maxpool2d(x, kernel, stride, pad, dilation, keep=False)[0]

    def maxpool2d_grad(self, gy, argmax, x_shape):
        if isinstance(argmax, _Phases):
            return _phase_max_grad(nhwc(gy), argmax).transpose(0, 3, 1, 2)
        if not isinstance(argmax, _Winners):
            return super().maxpool2d_grad(gy, argmax, x_shape)
        kernel, stride, dilation, (ph, pw) = argmax.geometry
        n, c, h, w = x_shape
        g = nhwc(gy)
        best = argmax.best
        # windows that do not overlap (stride >= extent, e.g. 2x2 stride 2) write each
        # input pixel at most once: the product goes straight into it, no temporary; if
        # they also tile the whole input, every pixel is written and nothing is zeroed
        extent = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
        disjoint = all(s >= e for s, e in zip(stride, extent))
        tiled = disjoint and list(stride) == extent and \
            all(o * s == size for o, s, size in zip(best.shape[1:3], stride, argmax.xp.shape[1:3]))
        gxp = (np.empty if tiled else np.zeros)(argmax.xp.shape, dtype=gy.dtype)
        taken = np.empty(best.shape, dtype=bool)  # windows whose first maximum is found
        hit = np.empty(best.shape, dtype=bool)
        taps = list(zip(_pool_taps(argmax.xp, kernel, stride, dilation, best.shape[1:3]),
                        _pool_taps(gxp, kernel, stride, dilation, best.shape[1:3])))

        def part(r: slice) -> None:  # images in parts on the threads (cpu_parallel)
            gr, br, tr, hr = g[r], best[r], taken[r], hit[r]
            for k, (tap, gtap) in enumerate(taps):
                win = hr
                if k == 0:
                    win = np.equal(tap[r], br, out=tr)
                elif k < len(taps) - 1:
                    np.equal(tap[r], br, out=hr)
                    np.greater(hr, tr, out=hr)  # hit and not taken: the first maximum wins
                    tr |= hr
                else:  # the maximum is one of the taps: the last wins where no earlier did
                    np.logical_not(tr, out=hr)
                if disjoint:
                    np.multiply(gr, win, out=gtap[r])
                else:
                    gtap[r] += np.multiply(gr, win, dtype=g.dtype)
        parallel.map_slices(n, best[0].size * len(taps), part)
        return gxp[:, ph: ph + h, pw: pw + w].transpose(0, 3, 1, 2)
