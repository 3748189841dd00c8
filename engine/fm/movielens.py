"""MovieLens 100K as sparse FM features: who rated what, plus what we know about each side.

Every rating row (user u, movie i) is the concatenation of a *user side* vector (one-hot
user, age bucket, gender, occupation, and the movies u rated, scaled by 1/sqrt(count),
SVD++-style implicit feedback) and a *movie side* vector (one-hot movie, genres scaled
by 1/sqrt(count), release-year bucket). Both sides are stored per entity (CSR), so a
solver can aggregate over a user's rows instead of materialising ~190 nonzeros per row.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import sparse

AGE_EDGES = (18, 25, 35, 45, 50, 56)  # MovieLens 1M's buckets: <18, 18-24, ..., 56+
AGE_NAMES = ("<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")
YEAR_EDGES = (1930, 1940, 1950, 1960, 1970, 1980, 1990, 1995, 1996, 1997, 1998)
YEAR_NAMES = ("<1930", "1930s", "1940s", "1950s", "1960s", "1970s", "1980s", "1990-94",
              "1995", "1996", "1997", "1998", "unknown")
GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
          "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
          "Romance", "Sci-Fi", "Thriller", "War", "Western")


@dataclass
class MovieLens:
    """The raw tables: movies (ids 1..n), users with demographics, and rating triples."""

    movie_ids: np.ndarray          # (n_movies,) int, ascending
    titles: list[str]
    years: np.ndarray              # (n_movies,) int, 0 = unknown
    genres: np.ndarray             # (n_movies, 19) bool
    user_ids: np.ndarray           # (n_users,) int, ascending
    ages: np.ndarray
    genders: list[str]
    occupations: list[str]
    root: Path = field(default_factory=Path)

    def split(self, name: str) -> np.ndarray:
        """Rating triples (user_id, movie_id, rating) of u.data or an official split file."""
        path = self.root / name
        if not path.exists():
            raise FileNotFoundError(f"MovieLens file {path} not found (expected the official "
                                    "ml-100k layout: u.data, u1.base .. u5.test)")
        a = np.loadtxt(path, dtype=np.int64, usecols=(0, 1, 2), ndmin=2)
        return a


def find_root(root: str | os.PathLike | None = None) -> Path:
    """The ml-100k folder: `root`, or $DEMYSTIFY_DATA/movielens/ml-100k."""
    cands = []
    if root is not None:
        r = Path(root)
        cands += [r, r / "ml-100k", r / "movielens" / "ml-100k"]
    env = os.environ.get("DEMYSTIFY_DATA")
    if env:
        cands.append(Path(env) / "movielens" / "ml-100k")
    for c in cands:
        if (c / "u.item").exists():
            return c
    raise FileNotFoundError("MovieLens 100K not found; looked in "
                            f"{[str(c) for c in cands] or '(nothing)'}. Set DEMYSTIFY_DATA to the "
                            "data folder or pass root= (the folder holding u.item, u.data, ...)")


def read_movielens(root: str | os.PathLike | None = None) -> MovieLens:
    """Parse u.item and u.user (latin-1, '|' separated) of the official release."""
    d = find_root(root)
    ids, titles, years, genres = [], [], [], []
    for line in (d / "u.item").read_text(encoding="latin-1").splitlines():
        if not line.strip():
            continue
        parts = line.split("|")
        ids.append(int(parts[0]))
        title = parts[1]
        m = re.search(r"\((\d{4})\)\s*$", title)
        year = int(m.group(1)) if m else 0
        if not year and parts[2][-4:].isdigit():
            year = int(parts[2][-4:])
        titles.append(title)
        years.append(year)
        genres.append([p == "1" for p in parts[-19:]])
    uids, ages, gen, occ = [], [], [], []
    for line in (d / "u.user").read_text(encoding="latin-1").splitlines():
        if not line.strip():
            continue
        p = line.split("|")
        uids.append(int(p[0]))
        ages.append(int(p[1]))
        gen.append(p[2])
        occ.append(p[3])
    return MovieLens(np.array(ids), titles, np.array(years), np.array(genres, bool),
                     np.array(uids), np.array(ages), gen, occ, d)


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
    X_user: sparse.csr_matrix       # (n_users, n) user-side features (global columns)
    X_movie: sparse.csr_matrix      # (n_movies, n)
    implicit_offset: int            # first column of the "rated" group
    movie_offset: int               # first column of the "movie" one-hot group
    genre_offset: int = 0
    movie_counts: np.ndarray | None = None  # training ratings per movie

    @property
    def n(self) -> int:
        return len(self.names)


def build_features(ml: MovieLens, train: np.ndarray, *, implicit: bool = True,
                   demographics: bool = True, movie_side: bool = True) -> Features:
    """Features for `train` triples; implicit feedback uses only the training ratings."""
    nu, nm = len(ml.user_ids), len(ml.movie_ids)
    uidx = np.searchsorted(ml.user_ids, train[:, 0])
    midx = np.searchsorted(ml.movie_ids, train[:, 1])
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

    off = add_group("user", [str(u) for u in ml.user_ids], 0, True)
    ucols.append((np.arange(nu), off + np.arange(nu), np.ones(nu)))
    if demographics:
        ab = np.searchsorted(np.array(AGE_EDGES), ml.ages, side="right")
        off = add_group("age", list(AGE_NAMES), 0, True)
        ucols.append((np.arange(nu), off + ab, np.ones(nu)))
        gl = sorted(set(ml.genders))
        off = add_group("gender", gl, 0, True)
        ucols.append((np.arange(nu), off + np.searchsorted(gl, ml.genders), np.ones(nu)))
        ol = sorted(set(ml.occupations))
        off = add_group("occupation", ol, 0, True)
        ucols.append((np.arange(nu), off + np.searchsorted(ol, ml.occupations), np.ones(nu)))
    implicit_offset = len(names)
    if implicit:
        off = add_group("rated", [str(m) for m in ml.movie_ids], 0, False)
        pairs = np.unique(uidx * nm + midx)
        r, c = pairs // nm, pairs % nm
        cnt = np.bincount(r, minlength=nu)
        ucols.append((r, off + c, 1.0 / np.sqrt(np.maximum(cnt[r], 1))))
    movie_offset = add_group("movie", [str(m) for m in ml.movie_ids], 1, True)
    mcols.append((np.arange(nm), movie_offset + np.arange(nm), np.ones(nm)))
    genre_offset = len(names)
    if movie_side:
        off = add_group("genre", list(GENRES), 1, False)
        r, c = np.nonzero(ml.genres)
        cnt = ml.genres.sum(1)
        mcols.append((r, off + c, 1.0 / np.sqrt(np.maximum(cnt[r], 1))))
        off = add_group("year", list(YEAR_NAMES), 1, True)
        mcols.append((np.arange(nm), off + year_bucket(ml.years), np.ones(nm)))
    n = len(names)

    def csr(cols, rows_n):
        r = np.concatenate([c[0] for c in cols])
        c = np.concatenate([c[1] for c in cols])
        v = np.concatenate([c[2] for c in cols]).astype(np.float64)
        return sparse.csr_matrix((v, (r, c)), shape=(rows_n, n))

    return Features(names, np.array(group), gnames, np.array(onehot), np.array(side, np.int8),
                    ml.user_ids.copy(), ml.movie_ids.copy(), csr(ucols, nu), csr(mcols, nm),
                    implicit_offset, movie_offset, genre_offset,
                    np.bincount(midx, minlength=nm))
