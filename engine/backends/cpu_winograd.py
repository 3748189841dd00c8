"""Winograd F(2x2, 3x3): a 3x3 stride-1 convolution with 16 products per 2x2 output tile, not 36.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2015). One output tile
y (2x2) of a 3x3 correlation needs a 4x4 input tile d, and for one channel pair

    y = A^T [(G g G^T) * (B^T d B)] A        (* elementwise on 4x4)

        B^T = [1  0 -1  0]    G = [ 1    0    0 ]    A^T = [1  1  1  0]
              [0  1  1  0]        [1/2  1/2  1/2]          [0  1 -1 -1]
              [0 -1  1  0]        [1/2 -1/2  1/2]
              [0  1  0 -1]        [ 0    0    1 ]

Summed over input channels, the elementwise product becomes, at each of the 16 positions
of the 4x4 tile, one matrix product (tiles x C_in) @ (C_in x C_out): a batched np.matmul
of 16 GEMMs with 16/36 = 1/2.25 of im2col's multiply-adds. B^T and A^T hold only 0 and
+-1, so the tile transforms are adds and subtracts, applied along rows then columns.

The backward pass is the adjoint of the same three linear steps, sharing dM = A gy A^T:
- weight: dU = V^T @ dM over the tiles (V: the forward's transformed input, kept), then
  gw = G^T dU G;
- input: dV = dM @ U^T, then the input transform run backwards (B dV B^T, tiles added
  where they overlap).

How the transforms stay cheap in NumPy (they are memory passes; the GEMMs run near peak):
- polyphase: tiles start every 2 pixels, so the input is split once (strided copies) into
  its four even/odd row/column phases. A tile's taps 0..3 along an axis are then phase 0
  and 1 at tile j and at tile j + 1, so every add and subtract runs on contiguous slices
  (a ufunc over runs of only C floats is ~6x slower);
- blocks of images (about `BLOCK` floats of tiles at a time): the phases, the transformed
  tiles and the products of one block stay in cache between the transforms and the GEMMs;
- the bias is added at tile position (1, 1) only: A^T e_1 = (1, 1) reaches all 4 outputs;
- the output transform is one GEMM (`_output`: 16 products -> 4 outputs, BLAS streaming
  through m once), and dM is kept with signs flipped (`_grad_tiles`) so that half of it
  is gy's phases copied in place.
In fp32 the results differ from im2col's by rounding only (the constants are 0, +-1/2,
+-1). F(4x4, 3x3) was not tried: it would cut the GEMMs' work from 1/2.25 to 1/4 of
im2col's, but with constants up to 8 its transforms take about twice the NumPy passes per
transformed value (counted), and here the transforms already cost as much as the GEMMs.
Its fp32 error, measured on random 3x3 filters over 16-128 channels, is ~16x F(2x2)'s
(~5e-6 vs 3e-7 of the largest output).
"""

from __future__ import annotations

import numpy as np

from . import cpu_parallel as parallel

G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
GG = np.kron(G, G)  # (16, 9): G g G^T of a flattened 3x3 g
AT = np.array([[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, -1.0, -1.0]])
AA = np.kron(AT, AT)  # (4, 16): A^T m A of a flattened 4x4 m
SIGNS = np.kron([1.0, 1.0, 1.0, -1.0], [1.0, 1.0, 1.0, -1.0])  # per tile position: `_grad_tiles`
BLOCK = 1 << 19  # floats of transformed tiles (input and output) per block of images
ROWS = 256  # ... but at least this many tiles: shorter GEMMs run slower (measured at 256
# channels, 4x4: 64 tiles a block 23.5 ms forward, 512 tiles 20.2 ms; im2col 29.5 ms)
DU_BUDGET = 1 << 21  # floats of per-group weight-gradient partial sums (cpu_parallel)


def pays(n: int, c_in: int, c_out: int, h: int, w: int) -> bool:
    """Whether Winograd beats im2col + GEMM for a 3x3 stride-1 layer: 16+ channels in and
    out (with fewer, the GEMMs' inner dimension C_in is too short to run at speed and the
    transforms dominate) and 2048+ output pixels (512 tiles: fewer cannot pay for the
    transforms' ~30 NumPy calls per block and the filter transform).

    Measured in a ResNet-9 training step, batch 128, one thread, ms forward / backward,
    im2col -> Winograd: 16->32 at 32x32 19.7 / 47.9 -> 24.2 / 34.9 (the forward alone
    loses, the pair wins), 32->64 at 16x16 17.5 / 39.2 -> 16.7 / 23.7, 64->128 at 8x8
    15.6 / 32.3 -> 12.6 / 22.6, two 128->128 at 4x4 17.3 / 33.7 -> 12.0 / 24.2. Alone:
    8->16 at 32x32 30 -> 29 (even); batch 8, 32->64 at 16x16 3.8 -> 3.1; one image,
    64->128 at 8x8 0.7 -> 1.1, 16->32 at 32x32 0.6 -> 0.6."""
    return c_in >= 16 and c_out >= 16 and n * h * w >= 2048


def _phase_rows(size: int, pad: int, phase: int, tiles: int) -> tuple[slice, slice]:
    """Along one axis: the positions of phase `phase` (padded row 2i + phase) that hold
    input, and those input rows (a stepped slice)."""
    i0 = (pad - phase + 1) // 2
    r0 = 2 * i0 + phase - pad
    count = min(len(range(r0, size, 2)), tiles + 1 - i0)
    return slice(i0, i0 + count), slice(r0, r0 + 2 * count - 1, 2)


def _bt(d0, d1, d2, d3, out: np.ndarray) -> None:
    """B^T along one axis: a tile's taps 0..3 into out[:, 0..3]."""
    np.subtract(d0, d2, out=out[:, 0])
    np.add(d1, d2, out=out[:, 1])
    np.subtract(d2, d1, out=out[:, 2])
    np.subtract(d1, d3, out=out[:, 3])


def _b(g: np.ndarray, out: np.ndarray, t: int, axis: int) -> None:
    """The adjoint of `_bt`: g[:, 0..3] (tiles) back onto phases out[:, 0..1] (t + 1 long
    on `axis`), adding where neighbouring tiles share taps. B's rows give, at phase j,
    even p0[j] = g0[j] + (g1 + g2 - g0)[j - 1] and odd p1[j] = (g1 - g2 + g3)[j] - g3[j - 1]:
    six passes, the sums built in place."""
    lo = (slice(None),) * axis + (slice(0, t),)
    hi = (slice(None),) * axis + (slice(1, t + 1),)
    first = (slice(None),) * axis + (slice(0, 1),)
    last = (slice(None),) * axis + (slice(t, t + 1),)
    g0, g1, g2, g3 = g[:, 0], g[:, 1], g[:, 2], g[:, 3]
    p0, p1 = out[:, 0], out[:, 1]
    p0[first] = 0
    np.add(g1, g2, out=p0[hi])  # taps 1, 2 of tile j - 1 and minus its tap 0 ...
    p0[hi] -= g0
    p0[lo] += g0  # ... and tap 0 of tile j
    p1[last] = 0
    np.subtract(g1, g2, out=p1[lo])  # taps 1, 2, 3 of tile j ...
    p1[lo] += g3
    p1[hi] -= g3  # ... and tap 3 of tile j - 1


class Geometry:
    """Sizes of one stride-1 3x3 convolution: the output (ho, wo) as th x tw tiles, done in
    blocks of `step` images."""

    def __init__(self, x_shape: tuple, pad: tuple[int, int], channels: int) -> None:
        self.n, _, self.h, self.w = x_shape
        self.pad = pad
        self.ho, self.wo = self.h + 2 * pad[0] - 2, self.w + 2 * pad[1] - 2
        self.th, self.tw = -(-self.ho // 2), -(-self.wo // 2)
        tiles = self.th * self.tw
        self.step = max(1, BLOCK // (16 * tiles * channels), -(-ROWS // tiles))

    def blocks(self):
        """(first image, last image + 1, first tile, last tile + 1) of each block."""
        t = self.th * self.tw
        for i in range(0, self.n, self.step):
            j = min(self.n, i + self.step)
            yield i, j, i * t, j * t


def filter_tiles(w: np.ndarray) -> np.ndarray:
    """U = G g G^T of each (C_out, C_in) 3x3 filter, as the 16 (C_in, C_out) GEMM operands:
    one (16, 9) @ (9, C_in * C_out) product with kron(G, G)."""
    co, c = w.shape[:2]
    return (GG.astype(w.dtype) @ w.transpose(2, 3, 1, 0).reshape(9, -1)).reshape(16, c, co)


def filter_grad(du: np.ndarray) -> np.ndarray:
    """gw = G^T dU G (the adjoint of `filter_tiles`) of the 16 (C_in, C_out) tile sums."""
    _, c, co = du.shape
    gw = (GG.T.astype(du.dtype) @ du.reshape(16, -1)).reshape(3, 3, c, co)
    return np.ascontiguousarray(gw.transpose(3, 2, 0, 1))


class InputTiles:
    """V = B^T d B of every 4x4 input tile of a block of NHWC images, and its adjoint."""

    def __init__(self, geo: Geometry, c: int, dtype) -> None:
        self.geo, b, th, tw = geo, geo.step, geo.th, geo.tw
        self.phases = np.zeros((2, 2, b, th + 1, tw + 1, c), dtype=dtype)  # borders stay 0
        self.rows = np.empty((4, 2, b, th, tw + 1, c), dtype=dtype)
        self.v = np.empty((16, b * th * tw, c), dtype=dtype)
        self.cuts = [(pr, pc, _phase_rows(geo.h, geo.pad[0], pr, th),
                      _phase_rows(geo.w, geo.pad[1], pc, tw)) for pr in range(2) for pc in range(2)]

    def forward(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(16, tiles, C) for the images of NHWC block x (into `out` if given)."""
        b, th, tw = x.shape[0], self.geo.th, self.geo.tw
        ph = self.phases[:, :, :b]
        for pr, pc, (ri, rx), (ci, cx) in self.cuts:
            ph[pr, pc][:, ri, ci] = x[:, rx, cx]
        rows = self.rows[:, :, :b]  # B^T along the rows: (4, 2 column phases, ...)
        p0, p1 = ph[0], ph[1]
        _bt(p0[:, :, :th], p1[:, :, :th], p0[:, :, 1:], p1[:, :, 1:], rows.swapaxes(0, 1))
        v = self.v[:, : b * th * tw] if out is None else out
        v6 = v.reshape(4, 4, b, th, tw, -1)  # ... and along the columns, for all 4 rows
        r0, r1 = rows[:, 0], rows[:, 1]
        _bt(r0[..., :tw, :], r1[..., :tw, :], r0[..., 1:, :], r1[..., 1:, :], v6)
        return v

    def backward(self, dv: np.ndarray, gx: np.ndarray) -> None:
        """The adjoint: tile gradients dV (16, tiles, C) onto NHWC block gx."""
        b, th, tw = gx.shape[0], self.geo.th, self.geo.tw
        rows = self.rows[:, :, :b]
        _b(dv.reshape(4, 4, b, th, tw, -1), rows, tw, 3)
        ph = self.phases[:, :, :b]
        _b(rows.swapaxes(0, 1), ph.swapaxes(0, 1), th, 2)
        for pr, pc, (ri, rx), (ci, cx) in self.cuts:
            gx[:, rx, cx] = ph[pr, pc][:, ri, ci]


def _output(m: np.ndarray, b: int, geo: Geometry, bias, y: np.ndarray, q: np.ndarray) -> None:
    """y = A^T m A (+ bias) of one block's products m (16, tiles, C_out, contiguous), into
    NHWC y, through scratch q (4 * tiles * C_out floats).

    One GEMM, not two passes of adds: the 2x2 outputs of every tile and channel are
    kron(A^T, A^T) (4 x 16) times its 16 products, i.e. (tiles * C_out, 16) @ (16, 4) over
    m seen flat, which BLAS streams through in one read of m (measured, 16->32 channels at
    32x32, batch 128: 9.9 -> 6.8 ms with the copies below). The zeros and +-1 of A make
    its sums those of the adds, up to rounding order."""
    co = m.shape[-1]
    if bias is not None:
        m[5] += bias  # tile position (1, 1)
    q4 = q[: m.size // 4].reshape(4, -1)
    np.matmul(m.reshape(16, -1).T, AA.T.astype(m.dtype, copy=False), out=q4.T)
    q6 = q4.reshape(2, 2, b, geo.th, geo.tw, co)
    if (geo.ho, geo.wo) == (2 * geo.th, 2 * geo.tw):  # whole tiles: one interleaving copy
        y.reshape(b, geo.th, 2, geo.tw, 2, co)[...] = q6.transpose(2, 3, 0, 4, 1, 5)
        return
    for i in range(2):  # the four output phases back in place (strided copies)
        for j in range(2):
            dst = y[:, i::2, j::2]
            dst[...] = q6[i, j][:, : dst.shape[1], : dst.shape[2]]


def _grad_tiles(gy: np.ndarray, geo: Geometry, dm: np.ndarray) -> np.ndarray:
    """SIGNS * dM, dM = A gy_tile A^T (the adjoint of `_output`), of NHWC block gy, as
    (16, tiles, C_out) in scratch dm (4, 4, >= tiles, C_out; zeroed when made: tiles past
    the output's edge see zeros).

    Why the signs: A's columns are (1, 1, 1, 0) and (0, 1, -1, -1), so along each axis dM's
    taps 0 and 3 are a phase of gy and minus the other one. With tap 3 negated (SIGNS, a
    flip of both dM and the operand it meets in each GEMM, exact) taps 0 and 3 *are* the
    phases: gy is copied straight into them and taps 1, 2 are their sum and difference,
    two passes per axis where plain dM takes a copy, a negation and a scratch array more."""
    b, co = gy.shape[0], gy.shape[-1]
    d = dm[:, :, : b * geo.th * geo.tw].reshape(4, 4, b, geo.th, geo.tw, co)
    for pr in range(2):
        for pc in range(2):
            src = gy[:, pr::2, pc::2]
            d[3 * pr, 3 * pc, :, : src.shape[1], : src.shape[2]] = src
    e = d[:, ::3]  # along the tile's rows, for column taps 0 and 3
    np.add(e[0], e[3], out=e[1])
    np.subtract(e[0], e[3], out=e[2])
    np.add(d[:, 0], d[:, 3], out=d[:, 1])  # ... and along the columns, for all 4 rows
    np.subtract(d[:, 0], d[:, 3], out=d[:, 2])
    return d.reshape(16, -1, co)


def conv3x3(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, pad: tuple[int, int],
            keep: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """(y as (N, Ho, Wo, C_out), V (16, tiles, C_in) per block if `keep`): the stride-1 3x3
    correlation of NCHW-shaped x (any memory order) with w (C_out, C_in, 3, 3). V, 4x the
    input, is what the weight gradient needs: kept, it costs less than transforming again."""
    co, c = w.shape[:2]
    geo = Geometry(x.shape, pad, c + co)
    xh = x.transpose(0, 2, 3, 1)
    dtype = np.result_type(x.dtype, w.dtype)
    u = filter_tiles(w.astype(dtype, copy=False))
    blocks = list(geo.blocks())
    # V block by block (what the weight gradient reads block by block): arrays of ~BLOCK
    # floats that malloc reuses, where one (16, all tiles, C) array can pass glibc's mmap
    # threshold (32 MB: 16->32 channels at 32x32, batch 128) and page-fault anew each step
    kept = [np.empty((16, t1 - t0, c), dtype=dtype) for _, _, t0, t1 in blocks] if keep \
        else None
    y = np.empty((geo.n, geo.ho, geo.wo, co), dtype=dtype)
    rows = geo.step * geo.th * geo.tw
    scratch = parallel.PerThread(lambda: (InputTiles(geo, c, dtype),
                                          np.empty(16 * rows * co, dtype=dtype),
                                          np.empty(4 * rows * co, dtype=dtype)))

    def block(k: int, slot: int) -> None:  # each block writes its own rows of y and V
        i, j, t0, t1 = blocks[k]
        tiles, m, q = scratch[slot]
        v = tiles.forward(xh[i:j], None if kept is None else kept[k])
        mb = m[: 16 * (t1 - t0) * co].reshape(16, t1 - t0, co)
        np.matmul(v, u, out=mb)
        _output(mb, j - i, geo, bias, y[i:j], q)
    parallel.run(len(blocks), block)
    return y, kept


def conv3x3_grad(gy: np.ndarray, w: np.ndarray, x_shape: tuple, pad: tuple[int, int],
                 need_x: bool, v: list[np.ndarray] | None = None
                 ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(gx as (N, H, W, C_in) if `need_x`, gw if the forward's tiles `v` (one array per
    block) are given) from NCHW-shaped gy, block by block."""
    co, c = w.shape[:2]
    geo = Geometry(x_shape, pad, c + co)
    th, tw, dtype = geo.th, geo.tw, gy.dtype
    gy = gy.transpose(0, 2, 3, 1)
    gx = ut = None
    if need_x:
        gx = np.empty((geo.n, geo.h, geo.w, c), dtype=dtype)
        ut = filter_tiles(w.astype(dtype, copy=False)).transpose(0, 2, 1)
        ut = ut * SIGNS.astype(dtype)[:, None, None]  # meets SIGNS * dM: dV exactly

    def make() -> tuple:
        return (np.zeros((4, 4, geo.step * th * tw, co), dtype=dtype),  # borders stay 0
                InputTiles(geo, c, dtype) if need_x else None,
                np.empty((16, geo.step * th * tw, c), dtype=dtype) if need_x else None)
    scratch = parallel.PerThread(make)
    blocks = list(geo.blocks())
    # the weight gradient sums over blocks: one partial sum per group of blocks (groups cut
    # from the sizes only), so the result does not depend on the thread count
    groups = parallel.split(len(blocks), 1, grain=1,
                            most=max(1, min(parallel.MAX_PARTS, DU_BUDGET // (16 * c * co))))
    du = [np.zeros((16, c, co), dtype=dtype) for _ in groups] if v is not None else None

    def group(g: int, slot: int) -> None:
        dm, tiles, dv = scratch[slot]
        for k in groups[g]:
            i, j, t0, t1 = blocks[k]
            d = _grad_tiles(gy[i:j], geo, dm)
            if du is not None:
                du[g] += np.matmul(v[k].transpose(0, 2, 1), d)
            if need_x:
                dvb = dv[:, : t1 - t0]
                np.matmul(d, ut, out=dvb)
                tiles.backward(dvb, gx[i:j])
    parallel.run(len(groups), group)
    if du is not None:
        du = parallel.total(du) * SIGNS.astype(dtype)[:, None, None]  # dU from SIGNS * dU
    return gx, (None if du is None else filter_grad(du))
