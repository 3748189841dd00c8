"""NumPy fast kernels of the fused ops (tier two of the backend, see engine/fused).

Convolution is im2col + one BLAS GEMM per group batch; its input gradient is a GEMM
followed by col2im as kH*kW strided slice additions (a loop over kernel taps, never over
pixels or batch items). Pooling loops over window taps the same way. Optimizer updates
work in place on the parameter and state arrays, without temporaries where NumPy allows.
"""

from __future__ import annotations

import math
import weakref

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import cpu_parallel as parallel
from .window import conv_out_size

Pair = tuple[int, int]


def _windows(xp: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair, out_hw: Pair,
             lead: str = "nc") -> np.ndarray:
    """Strided view of conv/pool windows of padded NCHW `xp`.

    lead="nc": shape (N, C, kH, kW, Ho, Wo); lead="c": (C, kH, kW, N, Ho, Wo).
    """
    n, c, _, _ = xp.shape
    sn, sc, sh, sw = xp.strides
    kh, kw = kernel
    ho, wo = out_hw
    taps = (sh * dilation[0], sw * dilation[1])
    steps = (sh * stride[0], sw * stride[1])
    if lead == "nc":
        return as_strided(xp, (n, c, kh, kw, ho, wo), (sn, sc, *taps, *steps), writeable=False)
    return as_strided(xp, (c, kh, kw, n, ho, wo), (sc, *taps, sn, *steps), writeable=False)


PAIR_GRAIN = 64  # GRAINs of multiply-adds a gradient needs before the two run side by side
# (`conv2d_grads`: 4 M at the default GRAIN, ~0.1 ms of GEMM; below, the region costs more)
GEMM_BLOCK = 4096  # columns of a long pixel axis per BLAS call (see the two below)
CALL_GRAIN = 32  # GRAINs of multiply-adds (2 M) one of their BLAS calls needs before a run
# of them is split over the threads: shorter calls (~20 us, LeNet-5's conv1) hand the GIL
# back and forth as short NumPy passes do ("Short passes stay serial" in cpu_parallel.py;
# measured, one vs two threads, load < 0.3: conv1's weight gradient 0.26-0.29 -> 0.33-0.42
# ms, its forward GEMM 0.21-0.26 -> 0.22-0.25 ms)


def _most(macs: int) -> int | None:
    """At most one part (serial) for a run of BLAS calls of `macs` multiply-adds each."""
    return 1 if macs < CALL_GRAIN * parallel.GRAIN else None


def _group_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(G, M, K) @ (G, K, N) as 2-D BLAS calls: batched np.matmul on transposed views
    falls off BLAS onto a slow loop. A long N (pixels) is cut into blocks of GEMM_BLOCK
    columns written in place: faster while a block of b is in cache (measured: LeNet-5's
    conv1, 6x25 @ 25x50176, 0.54 -> 0.30 ms)."""
    g, m, _ = a.shape
    n, chunk = b.shape[2], GEMM_BLOCK
    out = np.empty((g, m, n), dtype=np.result_type(a.dtype, b.dtype))
    blocks = [(i, j) for i in range(g) for j in range(0, n, chunk)]

    def part(r: range) -> None:  # runs of blocks on the threads (cpu_parallel)
        for i, j in blocks[r.start: r.stop]:
            np.matmul(a[i], b[i][:, j: j + chunk], out=out[i][:, j: j + chunk])
    parallel.map_ranges(parallel.split(len(blocks), m * a.shape[2] * chunk // 4,
                                       most=_most(m * a.shape[2] * min(chunk, n))), part)
    return out


def _matmul_nt(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b.T for a (M, L) and b (K, L) with a long reduction L and a small result, summed
    over chunks of L: OpenBLAS is several times slower on one such call (measured: LeNet
    conv1's weight gradient, 6x25 over 64*28*28 pixels, 1.40 ms whole, 0.35 ms in chunks
    of 4096 that stay in cache; no difference for long-M shapes)."""
    chunk = GEMM_BLOCK
    starts = range(0, a.shape[1], chunk)

    def group(r: range) -> np.ndarray:  # a partial sum per group of chunks (cpu_parallel)
        out = a[:, starts[r.start]: starts[r.start] + chunk] @ \
            b[:, starts[r.start]: starts[r.start] + chunk].T
        for i in starts[r.start + 1: r.stop]:
            out += a[:, i: i + chunk] @ b[:, i: i + chunk].T
        return out
    most = _most(a.shape[0] * b.shape[0] * min(chunk, a.shape[1]))
    return parallel.total(parallel.map_ranges(
        parallel.split(len(starts), chunk * (a.shape[0] + b.shape[0]), most=most), group))


def _batch_inner(n: int, groups: int) -> bool:
    """Whether the NCHW convolution's im2col puts the batch innermost (see `_cols`)."""
    return groups == 1 and n > 1


def _pad_hw(x: np.ndarray, pad: Pair, value: float = 0.0) -> np.ndarray:
    if pad == (0, 0):
        return x
    ph, pw = pad
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _tiled_max(x: np.ndarray, kernel: Pair, ho: int, wo: int) -> np.ndarray:
    """Max pooling whose windows tile a contiguous NCHW input (2x2 stride 2, ...): the
    maximum of whole rows first, then of neighbours along each row, every operand a flat
    1-D slice. The 4-D strided tap views cost one NumPy inner loop per output row, which
    on one image is most of the layer's time (13 -> 7 us for LeNet-5's first pooling)."""
    kh, kw = kernel
    rows = x.reshape(-1, kh, wo * kw)  # (N*C*Ho, kh, W)
    best_rows = rows[:, 0].copy()
    for i in range(1, kh):
        np.maximum(best_rows, rows[:, i], out=best_rows)
    cols = best_rows.reshape(-1, kw)  # (N*C*Ho*Wo, kw)
    best = cols[:, 0].copy()
    for j in range(1, kw):
        np.maximum(best, cols[:, j], out=best)
    return best.reshape(x.shape[0], x.shape[1], ho, wo)


def _tiles_2x2(x: np.ndarray, kernel: Pair, stride: Pair, pad: Pair, dilation: Pair) -> bool:
    """2x2 windows, stride 2, tiling a contiguous input exactly (LeNet-5's pooling)."""
    return (tuple(kernel) == tuple(stride) == (2, 2) and tuple(pad) == (0, 0)
            and tuple(dilation) == (1, 1) and x.shape[2] % 2 == 0 and x.shape[3] % 2 == 0
            and x.flags.c_contiguous)


class TiledArgmax:
    """The winners of a 2x2 stride-2 max pooling of NCHW input: one byte per output, its
    phase 2a + b (pixel (2i + a, 2j + b) won). `np.asarray` gives the general path's flat
    offsets in the input plane (what the GPU backend's gradient takes)."""

    __slots__ = ("phase", "shape")

    def __init__(self, phase: np.ndarray, shape: tuple) -> None:
        self.phase, self.shape = phase, shape

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        h, w = self.shape[2:]
        off = self.offsets(self.phase, w, np.int64) % (h * w)  # per plane, as the general path
        off = off.reshape(self.phase.shape)
        return off.astype(np.int32 if dtype is None else dtype)

    @staticmethod
    def offsets(phase: np.ndarray, w: int, dtype: type) -> np.ndarray:
        """Flat offsets of the winners of `phase`'s windows, counted from its first
        window's top-left pixel: window row k starts 2w * k pixels in, window j of a row
        2j (the windows tile the input, so this holds across planes too)."""
        rows, wo = phase.size // phase.shape[-1], phase.shape[-1]
        p = phase.reshape(rows, wo).astype(dtype)
        off = (p >> 1) * w
        off += p & 1
        off += np.arange(rows, dtype=dtype)[:, None] * (2 * w) + np.arange(wo, dtype=dtype) * 2
        return off.reshape(-1)


def _tiled_max_argmax(x: np.ndarray) -> tuple[np.ndarray, TiledArgmax]:
    """2x2 stride-2 max pooling of contiguous NCHW x with its winners, in two passes of
    pairs: along each row (right neighbour b > a), then between the two rows of each
    window (bottom > top). Taking the later tap only where it is strictly greater, row
    first, picks the first maximum in row-major order, as the general path and PyTorch.
    Each pass first copies its two operands apart (even and odd columns, top and bottom
    rows): NumPy's ufuncs on stride-2 views run several times slower than a copy and a
    contiguous pass. (The general path's 4-D tap copy and int32 offsets, and its
    gradient's float64 bincount, were most of LeNet-5's pooling time.)"""
    n, c, h, w = x.shape
    ho, wo = h // 2, w // 2
    best = np.empty((n, c, ho, wo), dtype=x.dtype)
    phase = np.empty(best.shape, dtype=np.uint8)

    def part(r: slice) -> None:  # images in parts on the threads (cpu_parallel)
        flat = x[r].reshape(-1)
        left, right = flat[0::2].copy(), flat[1::2].copy()
        to_right = np.greater(right, left)
        np.maximum(left, right, out=left)  # each row's pair maxima, (rows, Wo)
        pairs = left.reshape(-1, 2, wo)
        top, bottom = pairs[:, 0].copy(), pairs[:, 1].copy()
        down = np.greater(bottom, top)
        np.maximum(top, bottom, out=best[r].reshape(-1, wo))
        sides = to_right.reshape(-1, 2, wo)  # the winning row's b > a:
        col = sides[:, 0] ^ (down & (sides[:, 0] ^ sides[:, 1]))
        ph = phase[r].reshape(-1, wo)
        np.left_shift(down.view(np.uint8), 1, out=ph)
        ph |= col.view(np.uint8)
    parallel.map_slices(n, c * h * w, part, grain=parallel.PASS_GRAIN)  # NumPy passes only
    return best, TiledArgmax(phase, x.shape)


def _tiled_max_grad(gy: np.ndarray, arg: TiledArgmax) -> np.ndarray:
    """gy stored at each window's winning pixel of a zeroed input gradient: one indexed
    assignment (windows tile the input, so no two outputs share a pixel and nothing needs
    adding; measured at LeNet-5's conv1 size: 0.42 ms by the general path's bincount,
    0.29 ms so)."""
    n, c, h, w = arg.shape
    gx = np.zeros(arg.shape, dtype=gy.dtype)

    def part(r: slice) -> None:  # images in parts on the threads (cpu_parallel)
        gx[r].reshape(-1)[arg.offsets(arg.phase[r], w, np.intp)] = gy[r].reshape(-1)
    parallel.map_slices(n, c * h * w, part, grain=parallel.PASS_GRAIN)  # NumPy passes only
    return gx


class NumpyKernels:
    """The CPU backend's fast kernels (mixed into `CpuBackend`)."""

    _COLS_KEEP = 16  # im2col buffers kept for the weight gradient, bounded
    # id(x) -> (weakref to x, conv params, cols): the weight gradient reuses the forward's
    # im2col instead of rebuilding it; entries die with their input array (made on first use)
    _cols_cache: dict[int, tuple[weakref.ref, tuple, np.ndarray]] | None = None

    # -- elementwise and movement composites ------------------------------------------
    def clip(self, a, lo, hi) -> np.ndarray:
        return np.clip(a, lo, hi)

    def pad(self, a, widths, value: float = 0.0) -> np.ndarray:
        return np.pad(a, [tuple(w) for w in widths], constant_values=value)

    def concat(self, arrays, axis: int) -> np.ndarray:
        return np.concatenate(arrays, axis=axis)

    def linear(self, x, w, b=None) -> np.ndarray:
        """x @ w.T (+ b): the very two NumPy operations of the Tensor-op reference."""
        y = np.matmul(x, np.swapaxes(w, -1, -2))
        if b is not None:
            y += b
        return y

    # -- convolution ---------------------------------------------------------------------
    def _cols(self, x, kernel: Pair, stride: Pair, pad: Pair, dilation: Pair, groups: int):
        """im2col as (G, C/G*kH*kW, pixels), contiguous. One group: the pixels in (Ho, Wo,
        N) order, batch innermost, as the input gradient's col2im: x is transposed to
        (C, H, W, N) once, in the copy that pads it, and the patch copy then moves runs of
        Wo*N floats instead of Wo. Measured on LeNet-5 at batch 64, forward + gradients,
        interleaved: conv1 2.20 -> 2.01 ms, conv2 3.96 -> 3.66 ms (where the same input
        comes again, as a benchmark's fixed batch, its im2col is cached and conv1 pays
        only the larger output transpose: 2.02 -> 2.33 ms). Groups, or one image (where
        it would only add two transposes): pixels in (N, Ho, Wo) order."""
        n, c, h, w = x.shape
        ho = conv_out_size(h, kernel[0], stride[0], pad[0], dilation[0])
        wo = conv_out_size(w, kernel[1], stride[1], pad[1], dilation[1])
        if _batch_inner(n, groups):
            (ph, pw), (kh, kw) = pad, kernel
            xt = np.zeros((c, h + 2 * ph, w + 2 * pw, n), dtype=x.dtype)
            xt[:, ph: ph + h, pw: pw + w] = x.transpose(1, 2, 3, 0)
            sc, sh, sw, sn = xt.strides
            win = as_strided(xt, (c, kh, kw, ho, wo, n),
                             (sc, sh * dilation[0], sw * dilation[1], sh * stride[0],
                              sw * stride[1], sn), writeable=False)
            return win.reshape(1, c * kh * kw, ho * wo * n), ho, wo
        win = _windows(_pad_hw(x, pad), kernel, stride, dilation, (ho, wo), lead="c")
        cols = win.reshape(groups, (c // groups) * kernel[0] * kernel[1], n * ho * wo)
        return cols, ho, wo

    def _cached_cols(self, x, kernel: Pair, stride: Pair, pad: Pair, dilation: Pair,
                     groups: int):
        if self._cols_cache is None:
            self._cols_cache = {}
        key = (kernel, stride, pad, dilation, groups, x.shape)
        hit = self._cols_cache.get(id(x))
        if hit is not None and hit[0]() is x and hit[1] == key:
            return hit[2]
        cols = self._cols(x, kernel, stride, pad, dilation, groups)
        xid = id(x)
        try:
            ref = weakref.ref(x, lambda _: self._cols_cache.pop(xid, None))
        except TypeError:  # not weak-referenceable: just don't cache
            return cols
        self._cols_cache[xid] = (ref, key, cols)
        while len(self._cols_cache) > self._COLS_KEEP:
            self._cols_cache.pop(next(iter(self._cols_cache)))
        return cols

    def conv2d(self, x, w, stride: Pair, pad: Pair, dilation: Pair, groups: int):
        co, cg, kh, kw = w.shape
        n = x.shape[0]
        cols, ho, wo = self._cached_cols(x, (kh, kw), stride, pad, dilation, groups)
        wm = w.reshape(groups, co // groups, cg * kh * kw)
        y = _group_matmul(wm, cols)
        if _batch_inner(n, groups):  # pixels batch innermost (see _cols)
            return np.ascontiguousarray(y.reshape(co, ho, wo, n).transpose(3, 0, 1, 2))
        return np.ascontiguousarray(y.reshape(co, n, ho, wo).transpose(1, 0, 2, 3))

    def _gy_mat(self, gy, groups: int):
        """gy as (G, C_out/G, pixels), pixels in `_cols`' order."""
        n, co, ho, wo = gy.shape
        if _batch_inner(n, groups):
            return self._gy_batch_inner(gy)[None]
        return np.ascontiguousarray(gy.transpose(1, 0, 2, 3)).reshape(groups, co // groups,
                                                                       n * ho * wo)

    _gy_memo: tuple[weakref.ref, np.ndarray] | None = None

    def _gy_batch_inner(self, gy):
        """gy as (C_out, Ho*Wo*N), batch innermost. The input and the weight gradient of
        one convolution both need it: the last one is remembered while its gy lives."""
        memo = self._gy_memo
        if memo is not None and memo[0]() is gy:
            return memo[1]
        gm = np.ascontiguousarray(gy.transpose(1, 2, 3, 0)).reshape(gy.shape[1], -1)
        try:
            ref = weakref.ref(gy, lambda r: setattr(self, "_gy_memo", None)
                              if self._gy_memo is not None and self._gy_memo[0] is r else None)
        except TypeError:  # not weak-referenceable: nothing is remembered
            return gm
        self._gy_memo = (ref, gm)
        return gm

    def conv2d_grad_weight(self, gy, x, w_shape, stride, pad, dilation, groups: int):
        co, cg, kh, kw = w_shape
        cols, _, _ = self._cached_cols(x, (kh, kw), stride, pad, dilation, groups)
        gm = self._gy_mat(gy, groups)
        gw = np.stack([_matmul_nt(gm[g], cols[g]) for g in range(groups)])
        return gw.reshape(co, cg, kh, kw)

    def conv2d_grads(self, gy, x, w, stride: Pair, pad: Pair, dilation: Pair, groups: int,
                     need_x: bool, need_w: bool, need_b: bool) -> tuple:
        """(gx, gw, gb), each None where not wanted. Why one call: the input and the weight
        gradient are independent, each a few long GEMMs and some passes, so with two or
        more wanted they run side by side as the parts of one region (a thread each, the
        kernels inside serial as nested regions: the very arrays of the serial path).
        One gradient per thread holds the GIL far less than each split in short parts
        (see "Short passes stay serial" in cpu_parallel.py): LeNet-5's conv2 at batch 64
        is a 0.4 ms GEMM plus 150 4-us additions for gx, two 0.3 ms GEMMs for gw."""
        p = (stride, pad, dilation, groups)
        jobs = [job for job, wanted in (
            (lambda: self.conv2d_grad_input(gy, w, x.shape, *p), need_x),
            (lambda: self.conv2d_grad_weight(gy, x, w.shape, *p), need_w),
            (lambda: self.reduce("sum", gy, (0, 2, 3), False), need_b)) if wanted]
        if need_x and need_w and groups == 1:
            self._gy_batch_inner(gy)  # both read it (memo): made once, before the threads
        if len(jobs) > 1 and gy.size * w[0].size >= PAIR_GRAIN * parallel.GRAIN:
            outs = iter(parallel.map_ranges([range(i, i + 1) for i in range(len(jobs))],
                                            lambda r: jobs[r.start]()))
        else:
            outs = iter([job() for job in jobs])
        return tuple(next(outs) if wanted else None for wanted in (need_x, need_w, need_b))

    def conv2d_grad_input(self, gy, w, x_shape, stride, pad, dilation, groups: int):
        co, cg, kh, kw = w.shape
        n, c, h, wd = x_shape
        ho, wo = gy.shape[2], gy.shape[3]
        if groups == 1:
            return self._conv2d_grad_input_batch_inner(gy, w, x_shape, stride, pad, dilation)
        wm = w.reshape(groups, co // groups, cg * kh * kw)
        gcols = _group_matmul(wm.transpose(0, 2, 1), self._gy_mat(gy, groups))
        gcols = gcols.reshape(c, kh, kw, n, ho, wo)
        ph, pw = pad
        gxp = np.zeros((c, n, h + 2 * ph, wd + 2 * pw), dtype=gy.dtype)
        sh, sw = stride
        dh, dw = dilation
        for i in range(kh):
            for j in range(kw):
                gxp[:, :, i * dh: i * dh + sh * (ho - 1) + 1: sh,
                    j * dw: j * dw + sw * (wo - 1) + 1: sw] += gcols[:, i, j]
        gx = gxp[:, :, ph: ph + h, pw: pw + wd]
        return np.ascontiguousarray(gx.transpose(1, 0, 2, 3))

    def _conv2d_grad_input_batch_inner(self, gy, w, x_shape, stride, pad, dilation):
        """col2im with the batch innermost: the GEMM writes the patch gradients as
        (C, kH, kW, Ho, Wo, N), so each tap's strided addition into the (C, H, W, N) input
        gradient moves runs of Wo*N floats instead of Wo (measured on LeNet-5's conv2 at
        batch 64: 1.3 ms -> 0.4 ms); the result is transposed back to NCHW once."""
        co, c, kh, kw = w.shape
        n, _, h, wd = x_shape
        ho, wo = gy.shape[2], gy.shape[3]
        (sh, sw), (dh, dw), (ph, pw) = stride, dilation, pad
        wm = w.transpose(1, 2, 3, 0).reshape(c * kh * kw, co)  # rows (c, tap row, tap col)
        gm = self._gy_batch_inner(gy)
        gxp = np.zeros((c, h + 2 * ph, wd + 2 * pw, n), dtype=gy.dtype)

        def part(r: slice) -> None:  # input channels in parts on the threads: each its
            # GEMM rows and its planes of gxp (cpu_parallel)
            gcols = (wm[r.start * kh * kw: r.stop * kh * kw] @ gm).reshape(
                r.stop - r.start, kh, kw, ho, wo, n)
            g = gxp[r]
            for i in range(kh):
                for j in range(kw):
                    g[:, i * dh: i * dh + sh * (ho - 1) + 1: sh,
                      j * dw: j * dw + sw * (wo - 1) + 1: sw] += gcols[:, i, j]
        parallel.map_slices(c, kh * kw * ho * wo * n * (co + 1), part)
        return np.ascontiguousarray(gxp[:, ph: ph + h, pw: pw + wd].transpose(3, 0, 1, 2))

    # -- pooling -------------------------------------------------------------------------
    def maxpool2d(self, x, kernel: Pair, stride: Pair, pad: Pair, dilation: Pair):
        if _tiles_2x2(x, kernel, stride, pad, dilation):
            return _tiled_max_argmax(x)
        n, c, h, w = x.shape
        kh, kw = kernel
        ho = conv_out_size(h, kh, stride[0], pad[0], dilation[0])
        wo = conv_out_size(w, kw, stride[1], pad[1], dilation[1])
        win = _windows(_pad_hw(x, pad, -np.inf), kernel, stride, dilation, (ho, wo))
        best = np.empty((n, c, ho, wo), dtype=x.dtype)
        off = np.zeros(best.shape, dtype=np.int32)  # flat offset of the winning tap

        def part(r: slice) -> None:  # images in parts on the threads (cpu_parallel)
            # taps-major contiguous copy, then one pass per tap over contiguous memory
            taps = np.ascontiguousarray(win[r].transpose(2, 3, 0, 1, 4, 5))
            b, o = best[r], off[r]
            b[...] = taps[0, 0]
            better = np.empty(b.shape, dtype=bool)
            for k in range(1, kh * kw):
                i, j = divmod(k, kw)
                tap = taps[i, j]
                np.greater(tap, b, out=better)  # strict: the first maximum wins, like torch
                np.maximum(b, tap, out=b)
                o += better * (np.int32(i * dilation[0] * w + j * dilation[1]) - o)  # no putmask
        parallel.map_slices(n, c * ho * wo * kh * kw, part)
        rows = np.arange(ho, dtype=np.int32) * stride[0] - pad[0]
        cols = np.arange(wo, dtype=np.int32) * stride[1] - pad[1]
        return best, off + (rows * w)[:, None] + cols

    def maxpool2d_values(self, x, kernel: Pair, stride: Pair, pad: Pair, dilation: Pair):
        """Inference max pooling: the running maximum over the taps' strided views, with
        no argmax to track (what `maxpool2d` spends most of its time on)."""
        ho = conv_out_size(x.shape[2], kernel[0], stride[0], pad[0], dilation[0])
        wo = conv_out_size(x.shape[3], kernel[1], stride[1], pad[1], dilation[1])
        if tuple(kernel) == tuple(stride) and pad == (0, 0) and dilation == (1, 1) and \
                x.shape[2:] == (ho * kernel[0], wo * kernel[1]) and x.flags.c_contiguous:
            return _tiled_max(x, kernel, ho, wo)
        win = _windows(_pad_hw(x, pad, -np.inf), kernel, stride, dilation, (ho, wo))
        best = win[:, :, 0, 0].copy()
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                if i or j:
                    np.maximum(best, win[:, :, i, j], out=best)
        return best

    def maxpool2d_grad(self, gy, argmax, x_shape):
        if isinstance(argmax, TiledArgmax):
            return _tiled_max_grad(np.ascontiguousarray(gy), argmax)
        argmax = np.asarray(argmax)
        n, c, h, w = x_shape
        plane = (np.arange(n * c, dtype=np.int64) * (h * w)).reshape(n, c, 1, 1)
        flat = np.bincount((argmax + plane).ravel(), weights=gy.ravel(),
                           minlength=n * c * h * w)
        return flat.reshape(x_shape).astype(gy.dtype, copy=False)

    def _avg_count(self, x_shape, kernel, stride, pad, count_include_pad: bool, dtype):
        _, _, h, w = x_shape
        if count_include_pad or pad == (0, 0):
            return float(kernel[0] * kernel[1])
        ones = np.ones((1, 1, h, w), dtype=dtype)
        return self.avgpool2d(ones, kernel, stride, pad, True) * (kernel[0] * kernel[1])

    def avgpool2d(self, x, kernel: Pair, stride: Pair, pad: Pair, count_include_pad: bool):
        n, c, h, w = x.shape
        ho = conv_out_size(h, kernel[0], stride[0], pad[0], 1)
        wo = conv_out_size(w, kernel[1], stride[1], pad[1], 1)
        win = _windows(_pad_hw(x, pad), kernel, stride, (1, 1), (ho, wo))
        total = win.sum(axis=(2, 3))
        return (total / self._avg_count(x.shape, kernel, stride, pad, count_include_pad,
                                        x.dtype)).astype(x.dtype, copy=False)

    def avgpool2d_grad(self, gy, x_shape, kernel, stride, pad, count_include_pad: bool):
        n, c, h, w = x_shape
        ho, wo = gy.shape[2], gy.shape[3]
        g = gy / self._avg_count(x_shape, kernel, stride, pad, count_include_pad, gy.dtype)
        ph, pw = pad
        gxp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=gy.dtype)
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                gxp[:, :, i: i + stride[0] * (ho - 1) + 1: stride[0],
                    j: j + stride[1] * (wo - 1) + 1: stride[1]] += g
        return np.ascontiguousarray(gxp[:, :, ph: ph + h, pw: pw + w])

    # -- fused numerics ------------------------------------------------------------------
    def softmax(self, a, axis: int):
        e = np.exp(a - a.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)

    def log_softmax(self, a, axis: int):
        s = a - a.max(axis=axis, keepdims=True)
        return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))

    def softmax_cross_entropy(self, logits, labels):
        """(per-row -log softmax(logits)[label], softmax(logits)) for (N, C) logits."""
        s = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(s)
        total = e.sum(axis=1, keepdims=True)
        loss = np.log(total[:, 0]) - s[np.arange(len(labels)), labels]
        return loss.astype(logits.dtype, copy=False), e / total

    def softmax_cross_entropy_grad(self, g, probs, labels):
        gx = probs * g[:, None]
        gx[np.arange(len(labels)), labels] -= g
        return gx

    def batch_norm_train(self, x, gamma, beta, axes, eps: float):
        shape = [1] * x.ndim
        keep = [i for i in range(x.ndim) if i not in axes]
        for i in keep:
            shape[i] = x.shape[i]
        mean = x.mean(axis=tuple(axes), keepdims=True)
        xc = x - mean
        var = np.mean(xc * xc, axis=tuple(axes), keepdims=True)
        invstd = (1.0 / np.sqrt(var + eps)).astype(x.dtype, copy=False)
        y = xc * (invstd * gamma.reshape(shape)) + beta.reshape(shape)
        return y, mean.reshape(gamma.shape), invstd.reshape(gamma.shape)

    def batch_norm_grad(self, gy, x, gamma, mean, invstd, axes):
        axes = tuple(axes)
        shape = [1] * x.ndim
        for i in range(x.ndim):
            if i not in axes:
                shape[i] = x.shape[i]
        m = x.size // gamma.size
        xhat = (x - mean.reshape(shape)) * invstd.reshape(shape)
        gbeta = gy.sum(axis=axes)
        ggamma = (gy * xhat).sum(axis=axes)
        k = (gamma * invstd / m).reshape(shape)
        gx = k * (m * gy - gbeta.reshape(shape) - xhat * ggamma.reshape(shape))
        return gx.astype(x.dtype, copy=False), ggamma, gbeta

    def fm_pairwise(self, v, x):
        e = v * x[:, :, None]
        s = e.sum(axis=1)
        return 0.5 * ((s * s).sum(axis=1) - (e * e).sum(axis=(1, 2)))

    def fm_pairwise_grad(self, g, v, x):
        xe = x[:, :, None]
        d = (v * xe).sum(axis=1, keepdims=True) - v * xe  # s - v x, (B, N, K)
        gv = (g[:, None, None] * xe) * d
        gx = g[:, None] * (v * d).sum(axis=2)
        return gv.astype(v.dtype, copy=False), gx.astype(x.dtype, copy=False)

    # -- optimizer updates, in place -----------------------------------------------------
    def sgd_step_(self, p, g, buf, lr, momentum, dampening, nesterov, weight_decay, first):
        if weight_decay:
            g = g + weight_decay * p
        if momentum:
            if first:
                buf[...] = g
            else:
                buf *= momentum
                buf += (1.0 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p -= lr * g

    def adagrad_step_(self, p, g, acc, lr, eps, weight_decay):
        if weight_decay:
            g = g + weight_decay * p
        acc += g * g
        p -= lr * g / (np.sqrt(acc) + eps)

    def rmsprop_step_(self, p, g, sq, buf, lr, alpha, eps, momentum, weight_decay):
        if weight_decay:
            g = g + weight_decay * p
        sq *= alpha
        sq += (1.0 - alpha) * g * g
        step = g / (np.sqrt(sq) + eps)
        if momentum:
            buf *= momentum
            buf += step
            step = buf
        p -= lr * step

    def adam_step_(self, p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step):
        if weight_decay:
            if decoupled:
                p *= 1.0 - lr * weight_decay
            else:
                g = g + weight_decay * p
        m *= beta1
        m += (1.0 - beta1) * g
        v *= beta2
        v += (1.0 - beta2) * g * g
        bc1 = 1.0 - beta1 ** step
        bc2 = 1.0 - beta2 ** step
        denom = np.sqrt(v) / math.sqrt(bc2) + eps
        p -= (lr / bc1) * m / denom
