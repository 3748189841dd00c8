"""MovieLens 100K as sparse FM features: who rated what, plus what we know about each side.

The files are read by engine.data.movielens (the project's one MovieLens parser); this
module only turns its tables into features. Every rating row (user u, movie i) is the
concatenation of a *user side* vector (one-hot user, age bucket, gender, occupation, and
the movies u rated, scaled by 1/sqrt(count), SVD++-style implicit feedback) and a *movie
side* vector (one-hot movie, genres scaled by 1/sqrt(count), release-year bucket). Both
sides are stored per entity (CSR), so a solver can aggregate over a user's rows instead
of materialising ~190 nonzeros per row.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

from ..data.movielens import MovieLens100K, Ratings, load_movielens100k
from ..sparse import CSR

AGE_EDGES = (18, 25, 35, 45, 50, 56)  # MovieLens 1M's buckets: <18, 18-24, ..., 56+
AGE_NAMES = ("<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")
YEAR_EDGES = (1930, 1940, 1950, 1960, 1970, 1980, 1990, 1995, 1996, 1997, 1998)
YEAR_NAMES = ("<1930", "1930s", "1940s", "1950s", "1960s", "1970s", "1980s", "1990-94",
              "1995", "1996", "1997", "1998", "unknown")
_SPLIT = re.compile(r"u([1-5])\.(base|test)")


def load(data: MovieLens100K | str | os.PathLike | None = None) -> MovieLens100K:
    """`data` if already loaded, else engine.data's MovieLens 100K from that folder or zip
    (None: $DEMYSTIFY_DATA/movielens, or the cache; downloaded when missing)."""
    return data if isinstance(data, MovieLens100K) else load_movielens100k(data)


def ratings(ml: MovieLens100K, name: str | int) -> Ratings:
    """The ratings of an official file: "u1.base" .. "u5.test", "u.data" (all 100K), or a
    fold number k for u{k}.base."""
    if isinstance(name, int):
        return ml.split(name)[0]
    if name == "u.data":
        return ml.ratings
    m = _SPLIT.fullmatch(name)
    if m is None:
        raise ValueError(f"unknown MovieLens 100K ratings file {name!r}; use u.data, "
                         "u1.base .. u5.base, u1.test .. u5.test, or a fold number 1..5")
    train, test = ml.split(int(m.group(1)))
    return train if m.group(2) == "base" else test


def year_bucket(year: np.ndarray) -> np.ndarray:
    y = np.asarray(year)
    b = np.searchsorted(np.array(YEAR_EDGES), y, side="right")
    return np.where(y <= 0, len(YEAR_NAMES) - 1, b)


@dataclass
class Features:
    """Feature index of both sides: names, groups and the per-entity CSR matrices."""

    names: list[str]                # one per feature, global index
    group: np.ndarray               # (n,) group id per feature
    group_names: list[str]
    group_onehot: np.ndarray        # (n_groups,) bool: at most one nonzero per entity
    side: np.ndarray                # (n,) 0 = user side, 1 = movie side
    user_ids: np.ndarray            # entity order of the user side
    movie_ids: np.ndarray           # entity order of the movie side
    X_user: CSR                     # (n_users, n) user-side features (global columns)
    X_movie: CSR                    # (n_movies, n)
    implicit_offset: int            # first column of the "rated" group
    movie_offset: int               # first column of the "movie" one-hot group
    genre_offset: int = 0
    movie_counts: np.ndarray | None = None  # training ratings per movie

    @property
    def n(self) -> int:
        return len(self.names)


def build_features(ml: MovieLens100K, train: Ratings, *, implicit: bool = True,
                   demographics: bool = True, movie_side: bool = True,
                   rated_by: bool = False) -> Features:
    """Features for the `train` ratings; implicit feedback uses only those ratings.

    rated_by adds the movie side's implicit feedback: the users who rated the movie
    (1/sqrt(count) each), the mirror image of the user side's "rated" group.

    Entity rows follow engine.data's 0-based indices (row u = user id u + 1), so a
    rating's user-side row is `train.user` and its movie-side row `train.item`."""
    nu, nm = ml.n_users, ml.n_items
    uidx, midx = np.asarray(train.user), np.asarray(train.item)
    users, movies = ml.users, ml.movies
    names: list[str] = []
    group: list[int] = []
    gnames: list[str] = []
    onehot: list[bool] = []
    side: list[int] = []
    ucols: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (rows, cols, vals)
    mcols: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add_group(gname: str, labels: list[str], s: int, is_onehot: bool) -> int:
        start = len(names)
        gnames.append(gname)
        onehot.append(is_onehot)
        names.extend(f"{gname}={lab}" for lab in labels)
        group.extend([len(gnames) - 1] * len(labels))
        side.extend([s] * len(labels))
        return start

    off = add_group("user", [str(u) for u in users.id], 0, True)
    ucols.append((np.arange(nu), off + np.arange(nu), np.ones(nu)))
    if demographics:
        ab = np.searchsorted(np.array(AGE_EDGES), users.age, side="right")
        off = add_group("age", list(AGE_NAMES), 0, True)
        ucols.append((np.arange(nu), off + ab, np.ones(nu)))
        gl = sorted(set(users.gender))
        off = add_group("gender", gl, 0, True)
        ucols.append((np.arange(nu), off + np.searchsorted(gl, users.gender), np.ones(nu)))
        ol = sorted(set(users.occupation))
        off = add_group("occupation", ol, 0, True)
        ucols.append((np.arange(nu), off + np.searchsorted(ol, users.occupation), np.ones(nu)))
    implicit_offset = len(names)
    if implicit:
        off = add_group("rated", [str(m) for m in movies.id], 0, False)
        pairs = np.unique(uidx * nm + midx)
        r, c = pairs // nm, pairs % nm
        cnt = np.bincount(r, minlength=nu)
        ucols.append((r, off + c, 1.0 / np.sqrt(np.maximum(cnt[r], 1))))
    movie_offset = add_group("movie", [str(m) for m in movies.id], 1, True)
    mcols.append((np.arange(nm), movie_offset + np.arange(nm), np.ones(nm)))
    genre_offset = len(names)
    if movie_side:
        off = add_group("genre", list(ml.genres), 1, False)
        r, c = np.nonzero(movies.genre_matrix)
        cnt = movies.genre_matrix.sum(1)
        mcols.append((r, off + c, 1.0 / np.sqrt(np.maximum(cnt[r], 1))))
        off = add_group("year", list(YEAR_NAMES), 1, True)
        mcols.append((np.arange(nm), off + year_bucket(movies.year), np.ones(nm)))
    if rated_by:
        off = add_group("rated_by", [str(u) for u in users.id], 1, False)
        pairs = np.unique(midx * nu + uidx)
        r, c = pairs // nu, pairs % nu
        cnt = np.bincount(r, minlength=nm)
        mcols.append((r, off + c, 1.0 / np.sqrt(np.maximum(cnt[r], 1))))
    n = len(names)

    def csr(cols, rows_n):
        r = np.concatenate([c[0] for c in cols])
        c = np.concatenate([c[1] for c in cols])
        v = np.concatenate([c[2] for c in cols]).astype(np.float64)
        return CSR.from_coo(r, c, v, (rows_n, n))

    return Features(names, np.array(group), gnames, np.array(onehot), np.array(side, np.int8),
                    users.id.copy(), movies.id.copy(), csr(ucols, nu), csr(mcols, nm),
                    implicit_offset, movie_offset, genre_offset,
                    np.bincount(midx, minlength=nm))
