"""MovieLens 100K: the real files (folder and official zip layout), and a tiny fake copy."""

from __future__ import annotations

import hashlib
import zipfile

import numpy as np
import pytest

from engine.data import load_movielens100k, movielens
from engine.data.locate import DataUnavailableError, RemoteFile
from tests.data_helpers import make_zip, real_data

GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
          "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
          "Romance", "Sci-Fi", "Thriller", "War", "Western"]


def _fake_files() -> dict[str, bytes]:
    genre = "".join(f"{g}|{i}\n" for i, g in enumerate(GENRES)) + "\n"
    def flags(on: int | None) -> str:
        return "|".join("1" if i == on else "0" for i in range(19))

    item = [f"1|Toy Story (1995)|01-Jan-1995||http://x|{flags(3)}",  # Animation
            f"2|Caf\xe9 Society (V)||||{flags(2)}",  # Adventure; no year
            f"3|Old Film (1932) (V)||||{flags(None)}"]
    user = ["1|24|M|technician|85711", "2|53|F|other|T8H1N"]
    data = ["1\t1\t5\t881250949", "2\t3\t1\t891717742", "1\t2\t3\t878887116"]
    files = {"u.genre": genre.encode("latin-1"),
             "u.item": ("\n".join(item) + "\n").encode("latin-1"),
             "u.user": ("\n".join(user) + "\n").encode(),
             "u.data": ("\n".join(data) + "\n").encode()}
    for k in range(1, 6):
        files[f"u{k}.base"] = ("\n".join(data[:2]) + "\n").encode()
        files[f"u{k}.test"] = (data[2] + "\n").encode()
    return files


def _check_fake(ml):
    assert (ml.n_users, ml.n_items, len(ml.ratings)) == (2, 3, 3)
    assert ml.genres == GENRES
    r = ml.ratings
    assert r.user.tolist() == [0, 1, 0] and r.item.tolist() == [0, 2, 1]  # 0-based
    assert r.rating.dtype == np.float32 and r.rating.tolist() == [5, 1, 3]
    assert r.timestamp.tolist() == [881250949, 891717742, 878887116]
    assert ml.movies.id.tolist() == [1, 2, 3] and ml.users.id.tolist() == [1, 2]
    assert ml.movies.title[1] == "Caf\xe9 Society (V)"  # latin-1 decoded
    assert ml.movies.year.tolist() == [1995, -1, 1932]
    assert ml.movies.release_date == ["01-Jan-1995", "", ""]
    assert ml.movies.genres == [["Animation"], ["Adventure"], []]
    assert ml.movies.genre_matrix.shape == (3, 19) and ml.movies.genre_matrix.sum() == 2
    assert ml.users.zip == ["85711", "T8H1N"] and ml.users.gender == ["M", "F"]
    assert ml.users.age.tolist() == [24, 53]
    base, test = ml.split(3)
    assert len(base) == 2 and test.item.tolist() == [1]
    with pytest.raises(ValueError, match="1..5"):
        ml.split(6)


def test_fake_folder_and_zip(tmp_path):
    folder = tmp_path / "movielens" / "ml-100k"
    folder.mkdir(parents=True)
    for name, blob in _fake_files().items():
        (folder / name).write_bytes(blob)
    _check_fake(load_movielens100k(tmp_path / "movielens"))  # finds ml-100k/ inside
    _check_fake(load_movielens100k(folder))
    (tmp_path / "z").mkdir()
    zipped = make_zip(tmp_path / "z" / "ml-100k.zip",
                      {f"ml-100k/{k}": v for k, v in _fake_files().items()})
    _check_fake(load_movielens100k(zipped))  # the zip itself
    _check_fake(load_movielens100k(zipped.parent))  # a folder holding the zip


def test_bad_files_are_reported(tmp_path):
    files = _fake_files()
    files["u.data"] += b"3\t1\t4\t1\n"  # user 3 does not exist
    for name, blob in files.items():
        (tmp_path / name).write_bytes(blob)
    with pytest.raises(ValueError, match="ids out of range"):
        load_movielens100k(tmp_path)
    files["u.data"] = b"1\t1\t9\t1\n"
    (tmp_path / "u.data").write_bytes(files["u.data"])
    with pytest.raises(ValueError, match="1..5"):
        load_movielens100k(tmp_path)


def test_missing_and_download(local_server, tmp_path, monkeypatch):
    monkeypatch.setenv("DEMYSTIFY_OFFLINE", "1")
    with pytest.raises(DataUnavailableError, match=r"ml-100k\.zip"):
        load_movielens100k(tmp_path / "none")
    monkeypatch.setenv("DEMYSTIFY_OFFLINE", "0")
    served, url = local_server
    archive = make_zip(served / "ml-100k.zip",
                       {f"ml-100k/{k}": v for k, v in _fake_files().items()})
    monkeypatch.setattr(movielens.sources, "MOVIELENS_100K", RemoteFile(
        "ml-100k.zip", (url + "ml-100k.zip",), md5=hashlib.md5(archive.read_bytes()).hexdigest()))
    _check_fake(load_movielens100k(tmp_path / "dl"))
    assert (tmp_path / "dl" / "ml-100k.zip").is_file()


@pytest.mark.data
def test_real_files(tmp_path):
    folder = real_data("movielens", "ml-100k")
    ml = load_movielens100k(folder)
    assert len(ml.ratings) == 100_000 and ml.n_users == 943 and ml.n_items == 1682
    r = ml.ratings
    assert r.user.min() == 0 and r.user.max() == 942 and r.item.max() == 1681
    assert (r.user[0], r.item[0], r.rating[0], r.timestamp[0]) == (195, 241, 3.0, 881250949)
    assert sorted(np.unique(r.rating).tolist()) == [1, 2, 3, 4, 5]
    assert ml.genres == GENRES
    assert ml.movies.title[0] == "Toy Story (1995)" and ml.movies.year[0] == 1995
    assert ml.movies.genres[0] == ["Animation", "Children's", "Comedy"]
    assert (ml.movies.year > 1900).sum() >= 1680
    assert set(ml.users.gender) == {"M", "F"} and ml.users.age.min() >= 7
    full = {tuple(row) for row in np.stack([r.user, r.item, r.timestamp], 1).tolist()}
    for k in range(1, 6):
        base, test = ml.split(k)
        assert len(base) == 80_000 and len(test) == 20_000
        pairs = [set(zip(s.user.tolist(), s.item.tolist())) for s in (base, test)]
        assert not (pairs[0] & pairs[1])  # a rating is in base or test, never both
        assert {tuple(row) for row in np.stack([test.user, test.item, test.timestamp],
                                               1).tolist()} <= full
    # The official zip layout (ml-100k/...), read without extracting.
    zipped = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, f"ml-100k/{f.name}")
    mz = load_movielens100k(zipped)
    np.testing.assert_array_equal(mz.ratings.item, r.item)
    assert mz.movies.title == ml.movies.title
    np.testing.assert_array_equal(mz.split(1)[1].user, ml.split(1)[1].user)
