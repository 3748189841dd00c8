"""MovieLens 100K in its official layout, from the `ml-100k/` folder or `ml-100k.zip`.

Files: u.data (user, item, rating, timestamp; tab-separated), u1..u5.base/.test (the
official 5-fold splits), u.item (movie id | title | release date | video release date |
IMDb URL | 19 genre flags; latin-1), u.user (id | age | gender | occupation | zip),
u.genre (name | index).

Ids: `Ratings.user` / `Ratings.item` are 0-based row indices (official id - 1), ready for
embedding tables; the official 1-based ids are kept as `Users.id` / `Movies.id`, so
`movies.title[ratings.item[k]]` is the title of rating k, and `movies.id[i] == i + 1`.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import sources
from .archives import safe_member_name
from .locate import DataUnavailableError, dataset_dir, fetch, unavailable

_YEAR = re.compile(r"\((\d{4})\)")  # the last "(1995)" in a title; some end in "(V)"


@dataclass(frozen=True)
class Ratings:
    """One row per rating: 0-based user and item indices, rating 1..5, Unix time (s)."""

    user: np.ndarray  # int64
    item: np.ndarray  # int64
    rating: np.ndarray  # float32, 1.0 .. 5.0
    timestamp: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.user)


@dataclass(frozen=True)
class Movies:
    """Movie metadata, row i = item index i (official id i + 1)."""

    id: np.ndarray  # int64, official 1-based id
    title: list[str]  # as in u.item, e.g. "Toy Story (1995)"
    year: np.ndarray  # int64, from the title "(1995)" or the release date; -1 if unknown
    release_date: list[str]  # "01-Jan-1995" or "" (empty in some copies)
    genres: list[list[str]]  # genre names per movie
    genre_matrix: np.ndarray  # bool (n_items, n_genres), columns in MovieLens100K.genres order


@dataclass(frozen=True)
class Users:
    """User metadata, row u = user index u (official id u + 1)."""

    id: np.ndarray  # int64, official 1-based id
    age: np.ndarray  # int64
    gender: list[str]  # "M" / "F"
    occupation: list[str]
    zip: list[str]  # a string: some are not numeric (e.g. Canadian codes)


@dataclass(frozen=True)
class MovieLens100K:
    """Ratings plus metadata; `split(k)` gives the official fold k (u{k}.base, u{k}.test)."""

    ratings: Ratings
    movies: Movies
    users: Users
    genres: list[str]
    source: Path
    _read: Callable[[str], bytes] = field(repr=False, compare=False)

    @property
    def n_users(self) -> int:
        return len(self.users.id)

    @property
    def n_items(self) -> int:
        return len(self.movies.id)

    def split(self, k: int) -> tuple[Ratings, Ratings]:
        """(train, test) of official fold k in 1..5: u{k}.base and u{k}.test."""
        if k not in range(1, 6):
            raise ValueError(f"MovieLens 100K folds are 1..5, not {k!r}")
        return (_parse_ratings(self._read(f"u{k}.base"), f"u{k}.base", self),
                _parse_ratings(self._read(f"u{k}.test"), f"u{k}.test", self))


def _parse_ratings(raw: bytes, name: str, meta: MovieLens100K | None = None,
                   n_users: int = 0, n_items: int = 0) -> Ratings:
    try:
        table = np.loadtxt(io.BytesIO(raw), dtype=np.int64, delimiter="\t", ndmin=2)
    except ValueError as exc:
        raise ValueError(f"MovieLens {name}: not tab-separated integers ({exc})") from None
    if table.shape[1] != 4:
        raise ValueError(f"MovieLens {name}: {table.shape[1]} columns, expected 4 "
                         "(user, item, rating, timestamp)")
    if meta is not None:
        n_users, n_items = meta.n_users, meta.n_items
    user, item, rating, ts = table.T
    if len(table) and (user.min() < 1 or user.max() > n_users or item.min() < 1
                       or item.max() > n_items):
        raise ValueError(f"MovieLens {name}: ids out of range (users 1..{n_users}, items "
                         f"1..{n_items})")
    if len(table) and (rating.min() < 1 or rating.max() > 5):
        raise ValueError(f"MovieLens {name}: ratings must be 1..5")
    return Ratings(user - 1, item - 1, rating.astype(np.float32), ts.copy())


def _lines(raw: bytes) -> list[list[str]]:
    return [line.split("|") for line in raw.decode("latin-1").splitlines() if line.strip()]


def _parse_genres(raw: bytes) -> list[str]:
    rows = [r for r in _lines(raw) if len(r) >= 2]
    return [name for name, _ in sorted(((r[0], int(r[1])) for r in rows), key=lambda t: t[1])]


def _parse_movies(raw: bytes, genres: list[str]) -> Movies:
    rows = _lines(raw)
    ng = len(genres)
    ids, titles, years, dates, flags = [], [], [], [], []
    for n, r in enumerate(rows, 1):
        if len(r) != 5 + ng:
            raise ValueError(f"MovieLens u.item line {n}: {len(r)} fields, expected {5 + ng}")
        ids.append(int(r[0]))
        titles.append(r[1])
        dates.append(r[2])
        found = _YEAR.findall(r[1]) or re.findall(r"(\d{4})$", r[2].strip())
        years.append(int(found[-1]) if found else -1)
        flags.append([f == "1" for f in r[5:]])
    if ids != list(range(1, len(ids) + 1)):
        raise ValueError("MovieLens u.item: movie ids are not 1..N in order")
    matrix = np.array(flags, dtype=bool).reshape(len(rows), ng)
    return Movies(np.array(ids, np.int64), titles, np.array(years, np.int64), dates,
                  [[g for g, f in zip(genres, row) if f] for row in flags], matrix)


def _parse_users(raw: bytes) -> Users:
    rows = _lines(raw)
    for n, r in enumerate(rows, 1):
        if len(r) != 5:
            raise ValueError(f"MovieLens u.user line {n}: {len(r)} fields, expected 5")
    ids = [int(r[0]) for r in rows]
    if ids != list(range(1, len(ids) + 1)):
        raise ValueError("MovieLens u.user: user ids are not 1..N in order")
    return Users(np.array(ids, np.int64), np.array([int(r[1]) for r in rows], np.int64),
                 [r[2] for r in rows], [r[3] for r in rows], [r[4] for r in rows])


def _reader(path: Path) -> Callable[[str], bytes]:
    """A function reading one official file by name from a folder or the zip."""
    if path.is_dir():
        return lambda name: (path / name).read_bytes()
    with zipfile.ZipFile(path) as zf:
        names = {safe_member_name(i.filename, path): i.filename for i in zf.infolist()
                 if not i.is_dir()}
    index = {n.rsplit("/", 1)[-1]: orig for n, orig in names.items()
             if n.count("/") <= 1}  # "u.data" or "ml-100k/u.data"

    def read(name: str) -> bytes:
        if name not in index:
            raise FileNotFoundError(f"{path}: no member {name} (expected ml-100k/{name})")
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(index[name])
            if info.file_size > 64 << 20:
                raise ValueError(f"{path}: {name} is {info.file_size} bytes, too big for "
                                 "MovieLens 100K")
            return zf.read(info)
    return read


def _find(d: Path) -> Path | None:
    if d.is_file() and d.suffix.lower() == ".zip":
        return d
    for cand in (d, d / "ml-100k"):
        if (cand / "u.data").is_file():
            return cand
    zipped = d / sources.MOVIELENS_100K.name
    return zipped if zipped.is_file() else None


def load_movielens100k(root: str | os.PathLike | None = None, *,
                       download: bool = True) -> MovieLens100K:
    """MovieLens 100K from `root` (a folder holding u.data or ml-100k/, or the zip),
    else `$DEMYSTIFY_DATA/movielens`, else the per-user cache; ml-100k.zip is downloaded
    there (MD5-checked) when missing and downloads are allowed."""
    folder = dataset_dir("movielens", root)
    path = _find(folder)
    if path is None:
        try:
            path = fetch(sources.MOVIELENS_100K, folder, dataset="MovieLens 100K",
                         download=download)
        except DataUnavailableError as exc:
            raise unavailable("MovieLens 100K", ["the ml-100k/ folder (u.data, u.item, ...)",
                                                 "or ml-100k.zip"], folder, exc.reason) from None
    read = _reader(path)
    genres = _parse_genres(read("u.genre"))
    movies = _parse_movies(read("u.item"), genres)
    users = _parse_users(read("u.user"))
    ratings = _parse_ratings(read("u.data"), "u.data", n_users=len(users.id),
                             n_items=len(movies.id))
    return MovieLens100K(ratings, movies, users, genres, path, read)
