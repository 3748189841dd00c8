"""engine.sparse.CSR against scipy.sparse (the oracle): construction, rows, columns,
transpose, sums and products, on random matrices with empty rows and duplicates."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from engine.sparse import CSR, as_csr, issparse


def _random(seed: int, m: int = 13, n: int = 9, nnz: int = 40):
    rng = np.random.default_rng(seed)
    r = rng.integers(0, m, nnz)
    r[r == 3] = 4  # row 3 stays empty
    c = rng.integers(0, n, nnz)
    v = rng.normal(size=nnz)
    return r, c, v, (m, n)


def _same(a: CSR, b: sparse.csr_matrix) -> None:
    b = b.tocsr()
    b.sum_duplicates()
    assert a.shape == b.shape
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    # duplicates may be summed in another order (scipy sorts them unstably)
    np.testing.assert_allclose(a.data, b.data, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_from_coo_sums_duplicates_like_scipy(seed: int) -> None:
    r, c, v, shape = _random(seed)
    a = CSR.from_coo(r, c, v, shape)
    b = sparse.csr_matrix((v, (r, c)), shape=shape)
    _same(a, b)
    np.testing.assert_allclose(a.toarray(), b.toarray(), rtol=0, atol=1e-15)
    assert a.nnz == b.nnz and a.row_counts()[3] == 0


@pytest.mark.parametrize("seed", [0, 1])
def test_rows_columns_transpose_power_add(seed: int) -> None:
    r, c, v, shape = _random(seed)
    a, b = CSR.from_coo(r, c, v, shape), sparse.csr_matrix((v, (r, c)), shape=shape)
    rows = np.array([5, 3, 0, 5, 12, -1])
    _same(a[rows], b[rows])
    _same(a[2:9], b[2:9])
    _same(a[::3], b[::3])
    _same(a[7], b[7])
    mask = np.arange(shape[0]) % 2 == 0
    _same(a[mask], b[mask])
    _same(a.columns([1, 4, 5, 8]), b[:, [1, 4, 5, 8]])
    _same(a.columns([8, 0, 3]), b[:, [8, 0, 3]])  # a new column order
    _same(a.T, b.T.tocsr())
    _same(a.power(2), b.power(2))
    r2, c2, v2, _ = _random(seed + 10)
    _same(a + CSR.from_coo(r2, c2, v2, shape), b + sparse.csr_matrix((v2, (r2, c2)), shape))


@pytest.mark.parametrize("seed", [0, 1])
def test_products_match_scipy(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.sparse as S

    r, c, v, shape = _random(seed, m=200, n=50, nnz=1500)
    a, b = CSR.from_coo(r, c, v, shape), sparse.csr_matrix((v, (r, c)), shape=shape)
    rng = np.random.default_rng(seed)
    for rhs in (rng.normal(size=50), rng.normal(size=(50, 7))):
        want = b @ rhs
        got = a @ rhs
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # tiny chunks: the product is assembled from many pieces, with the same result
    monkeypatch.setattr(S, "_CHUNK", 5)
    rhs = rng.normal(size=(50, 4))
    np.testing.assert_allclose(a @ rhs, b @ rhs, rtol=1e-12, atol=1e-12)
    assert (CSR.from_coo([], [], [], (3, 4)) @ np.ones(4)).tolist() == [0.0, 0.0, 0.0]


def test_as_csr_and_bad_input() -> None:
    d = np.array([[0.0, 2.0], [3.0, 0.0], [0.0, 0.0]])
    s = sparse.csr_matrix(d)
    assert issparse(s) and issparse(as_csr(d)) and not issparse(d)
    np.testing.assert_array_equal(as_csr(s).toarray(), d)
    np.testing.assert_array_equal(as_csr(d).toarray(), d)
    np.testing.assert_array_equal(CSR.identity(3).toarray(), np.eye(3))
    with pytest.raises(ValueError, match="indptr"):
        CSR([1.0], [0], [0, 2], (1, 2))
    with pytest.raises(ValueError, match="column indices"):
        CSR([1.0], [5], [0, 1], (1, 2))
    with pytest.raises(ValueError, match="outside the shape"):
        CSR.from_coo([0], [2], [1.0], (1, 2))
    with pytest.raises(ValueError, match="align"):
        as_csr(d) @ np.ones(3)
    with pytest.raises(IndexError, match="out of range"):
        as_csr(d)[[3]]
    with pytest.raises(ValueError, match="distinct"):
        as_csr(d).columns([0, 0])
    with pytest.raises(TypeError, match="columns"):
        as_csr(d)[:, 0]
    with pytest.raises(ValueError, match="values"):
        as_csr(d).with_data(np.ones(5))
