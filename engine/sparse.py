"""A compressed-sparse-row matrix in NumPy: the few operations the FM and its sampler use.

Why not scipy.sparse: the engine runs in the browser (Pyodide), where scipy is not
shipped. Only what engine.fm needs is here: build from (row, col, value) triples, row
gathers, column selection, the transpose, the sum of two matrices, and the product with a
dense array. Canonical form as scipy keeps it: column indices sorted within each row, no
duplicates. Products agree with scipy's to rounding (NumPy sums each row pairwise; scipy
sums it entry by entry). Anything with `tocsr()` (a scipy matrix) is
accepted by `as_csr`, so callers and tests may still pass scipy matrices.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# entries x columns gathered at once by a product (bounds its temporary to ~32 MB)
_CHUNK = 1 << 22


class CSR:
    """(rows, cols) sparse matrix: row r holds data[indptr[r]:indptr[r+1]] at columns
    indices[indptr[r]:indptr[r+1]]. `data` may be reassigned (same length) to reuse the
    pattern with other values."""

    __slots__ = ("data", "indices", "indptr", "shape")

    def __init__(self, data: Any, indices: Any, indptr: Any, shape: tuple[int, int],
                 *, check: bool = True) -> None:
        self.data = np.asarray(data)
        self.indices = np.asarray(indices, np.int64)
        self.indptr = np.asarray(indptr, np.int64)
        self.shape = (int(shape[0]), int(shape[1]))
        if check:
            self._check()

    def _check(self) -> None:
        m, n = self.shape
        ip, ix = self.indptr, self.indices
        if m < 0 or n < 0:
            raise ValueError(f"CSR shape must be non-negative, got {self.shape}")
        if ip.ndim != 1 or len(ip) != m + 1 or (m + 1 and ip[0] != 0):
            raise ValueError(f"CSR indptr must have {m + 1} entries starting at 0, "
                             f"got {ip.shape}")
        if np.any(np.diff(ip) < 0) or ip[-1] != len(ix) or len(ix) != len(self.data):
            raise ValueError("CSR indptr must be non-decreasing and end at nnz = "
                             f"len(indices) = len(data); got {ip[-1]}, {len(ix)}, "
                             f"{len(self.data)}")
        if len(ix) and (ix.min() < 0 or ix.max() >= n):
            raise ValueError(f"CSR column indices must be in [0, {n}), got "
                             f"[{ix.min()}, {ix.max()}]")

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_coo(cls, rows: Any, cols: Any, vals: Any, shape: tuple[int, int]) -> CSR:
        """From (row, col, value) triples; duplicate positions are summed."""
        r, c = np.asarray(rows, np.int64).ravel(), np.asarray(cols, np.int64).ravel()
        v = np.asarray(vals).ravel()
        if not len(r) == len(c) == len(v):
            raise ValueError(f"rows, cols and vals differ in length: {len(r)}, {len(c)}, "
                             f"{len(v)}")
        m, n = int(shape[0]), int(shape[1])
        if len(r) and (r.min() < 0 or r.max() >= m or c.min() < 0 or c.max() >= n):
            raise ValueError(f"a (row, col) lies outside the shape {(m, n)}")
        order = np.lexsort((c, r))
        r, c, v = r[order], c[order], v[order]
        if len(r) > 1:
            new = np.r_[True, (r[1:] != r[:-1]) | (c[1:] != c[:-1])]
            if not new.all():
                starts = np.flatnonzero(new)
                v = np.add.reduceat(v, starts)
                r, c = r[starts], c[starts]
        indptr = np.zeros(m + 1, np.int64)
        np.cumsum(np.bincount(r, minlength=m), out=indptr[1:])
        return cls(v, c, indptr, (m, n), check=False)

    @classmethod
    def from_dense(cls, a: Any) -> CSR:
        a = np.asarray(a)
        if a.ndim != 2:
            raise ValueError(f"need a 2-d array, got shape {a.shape}")
        r, c = np.nonzero(a)
        return cls.from_coo(r, c, a[r, c], a.shape)

    @classmethod
    def identity(cls, n: int) -> CSR:
        return cls(np.ones(n), np.arange(n), np.arange(n + 1), (n, n), check=False)

    # -- properties -----------------------------------------------------------------------
    @property
    def nnz(self) -> int:
        return len(self.indices)

    @property
    def ndim(self) -> int:
        return 2

    def row_counts(self) -> np.ndarray:
        """Stored entries per row."""
        return np.diff(self.indptr)

    def row_ids(self) -> np.ndarray:
        """The row of each stored entry (nnz,)."""
        return np.repeat(np.arange(self.shape[0]), self.row_counts())

    def with_data(self, data: Any) -> CSR:
        """The same pattern with other values (shares indices and indptr)."""
        data = np.asarray(data)
        if data.shape != (self.nnz,):
            raise ValueError(f"need {self.nnz} values, got shape {data.shape}")
        return CSR(data, self.indices, self.indptr, self.shape, check=False)

    def copy(self) -> CSR:
        return CSR(self.data.copy(), self.indices.copy(), self.indptr.copy(), self.shape,
                   check=False)

    def tocsr(self) -> CSR:
        return self

    def toarray(self) -> np.ndarray:
        out = np.zeros(self.shape, self.data.dtype if self.nnz else np.float64)
        np.add.at(out, (self.row_ids(), self.indices), self.data)
        return out

    def __repr__(self) -> str:
        return f"CSR(shape={self.shape}, nnz={self.nnz}, dtype={self.data.dtype})"

    # -- structure ------------------------------------------------------------------------
    def __getitem__(self, key: Any) -> CSR:
        """Rows: X[i] (a 1-row matrix), X[a:b], X[index array]. Columns: X.columns(cols)."""
        if isinstance(key, tuple):
            raise TypeError("CSR supports row indexing X[rows]; select columns with "
                            "X.columns(cols)")
        m = self.shape[0]
        if isinstance(key, slice):
            rows = np.arange(m)[key]
        else:
            rows = np.asarray(key)
            if rows.dtype == bool:
                if rows.shape != (m,):
                    raise IndexError(f"boolean row mask of shape {rows.shape} for {m} rows")
                rows = np.flatnonzero(rows)
            elif rows.dtype.kind not in "iu":
                raise IndexError(f"row index must be integers, slice or bool mask, not "
                                 f"{rows.dtype}")
            rows = rows.reshape(-1).astype(np.int64)
            if len(rows) and (rows.min() < -m or rows.max() >= m):
                raise IndexError(f"row index out of range for {m} rows")
            rows = np.where(rows < 0, rows + m, rows)
        if isinstance(key, slice) and (key.step is None or key.step == 1):
            a, b = (int(rows[0]), int(rows[-1]) + 1) if len(rows) else (0, 0)
            s, e = self.indptr[a], self.indptr[b]
            return CSR(self.data[s:e], self.indices[s:e], self.indptr[a:b + 1] - s,
                       (b - a, self.shape[1]), check=False)
        counts = self.row_counts()[rows]
        indptr = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(counts, out=indptr[1:])
        take = np.repeat(self.indptr[rows] - indptr[:-1], counts) + np.arange(indptr[-1])
        return CSR(self.data[take], self.indices[take], indptr, (len(rows), self.shape[1]),
                   check=False)

    def columns(self, cols: Any) -> CSR:
        """X[:, cols] for distinct columns, renumbered 0..len(cols)-1 in that order."""
        cols = np.asarray(cols, np.int64).reshape(-1)
        n = self.shape[1]
        if len(cols) and (cols.min() < 0 or cols.max() >= n):
            raise IndexError(f"column index out of range for {n} columns")
        new = np.full(n, -1, np.int64)
        new[cols] = np.arange(len(cols))
        if len(np.unique(cols)) != len(cols):
            raise ValueError("columns(): the selected columns must be distinct")
        ni = new[self.indices]
        keep = ni >= 0
        if len(cols) > 1 and np.any(np.diff(cols) < 0):  # a new order: re-sort each row
            return CSR.from_coo(self.row_ids()[keep], ni[keep], self.data[keep],
                                (self.shape[0], len(cols)))
        indptr = np.zeros(self.shape[0] + 1, np.int64)
        np.cumsum(np.bincount(self.row_ids()[keep], minlength=self.shape[0]), out=indptr[1:])
        return CSR(self.data[keep], ni[keep], indptr, (self.shape[0], len(cols)), check=False)

    @property
    def T(self) -> CSR:
        """The transpose, in canonical CSR form."""
        order = np.argsort(self.indices, kind="stable")
        indptr = np.zeros(self.shape[1] + 1, np.int64)
        np.cumsum(np.bincount(self.indices, minlength=self.shape[1]), out=indptr[1:])
        return CSR(self.data[order], self.row_ids()[order], indptr,
                   (self.shape[1], self.shape[0]), check=False)

    def transpose(self) -> CSR:
        return self.T

    def power(self, p: float) -> CSR:
        """Elementwise power of the stored values."""
        return self.with_data(self.data ** p)

    def __add__(self, other: CSR) -> CSR:
        other = as_csr(other)
        if other.shape != self.shape:
            raise ValueError(f"cannot add CSR of shapes {self.shape} and {other.shape}")
        return CSR.from_coo(np.r_[self.row_ids(), other.row_ids()],
                            np.r_[self.indices, other.indices],
                            np.r_[self.data, other.data], self.shape)

    # -- products -------------------------------------------------------------------------
    def __matmul__(self, b: Any) -> np.ndarray:
        """Dense result of X @ b for a dense vector or matrix b."""
        if isinstance(b, CSR) or hasattr(b, "tocsr"):
            raise TypeError("CSR @ sparse is not supported; multiply by a dense array")
        b = np.asarray(b)
        if b.ndim not in (1, 2) or b.shape[0] != self.shape[1]:
            raise ValueError(f"shapes {self.shape} and {b.shape} do not align")
        vec = b.ndim == 1
        b2 = b if b.ndim == 2 else b[:, None]
        k = b2.shape[1]
        dt = np.result_type(self.data.dtype if self.nnz else np.float64, b2.dtype)
        out = np.zeros((self.shape[0], k), dt)
        rows = np.flatnonzero(self.row_counts())
        if len(rows) and k:
            # transposed layout: gather columns of b.T and reduce along contiguous memory
            # (several times faster in NumPy than gathering and reducing rows of b)
            bT = np.ascontiguousarray(b2.T, dtype=dt)
            starts = self.indptr[rows]
            step = max(1, _CHUNK // k)  # entries per chunk
            lo = 0
            while lo < len(rows):
                hi = max(int(np.searchsorted(starts, starts[lo] + step)), lo + 1)
                s, e = int(starts[lo]), int(self.indptr[rows[hi - 1] + 1])
                prod = np.take(bT, self.indices[s:e], axis=1)
                prod *= self.data[s:e]
                out[rows[lo:hi]] = np.add.reduceat(prod, starts[lo:hi] - s, axis=1).T
                lo = hi
        return out[:, 0] if vec else out


def as_csr(x: Any) -> CSR:
    """A CSR from a CSR, anything with tocsr() (scipy), or a dense 2-d array."""
    if isinstance(x, CSR):
        return x
    if hasattr(x, "tocsr"):
        s = x.tocsr()
        if hasattr(s, "sum_duplicates"):
            s = s.copy()
            s.sum_duplicates()
        return CSR(np.asarray(s.data), np.asarray(s.indices), np.asarray(s.indptr),
                   tuple(s.shape))
    return CSR.from_dense(x)


def issparse(x: Any) -> bool:
    """True for a CSR or a scipy sparse matrix (something with tocsr())."""
    return isinstance(x, CSR) or hasattr(x, "tocsr")
