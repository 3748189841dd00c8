"""Reading dataset archives (tar, tar.gz/bz2/xz, zip) in place, safely.

Loaders read members straight into memory, so nothing is written outside the cache and
a member's name never becomes a file path. Names are still validated (absolute paths,
drive letters, `..` components are rejected) and only regular files and folders are
accepted: links and device files in a dataset archive are a red flag (classic
path-traversal and "tar slip" attacks use them), so the archive is refused outright.
`safe_extract` applies the same rules for the rare case where files must be unpacked.
"""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

MAX_MEMBER_BYTES = 1 << 30  # one member above 1 GiB is not a dataset file we know
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


class UnsafeArchiveError(ValueError):
    """An archive member would escape its folder, is a link or device, or is too big."""


def is_archive(path: str | os.PathLike) -> bool:
    """True for file names this module reads (.zip and the tar family)."""
    name = str(path).lower()
    return name.endswith(".zip") or name.endswith(_TAR_SUFFIXES)


def safe_member_name(name: str, archive: str | os.PathLike = "archive") -> str:
    """Normalised relative POSIX name of a member, or UnsafeArchiveError."""
    posix = name.replace("\\", "/")
    parts = PurePosixPath(posix).parts
    if (posix.startswith("/") or (parts and len(parts[0]) == 2 and parts[0][1] == ":")
            or ".." in parts):
        raise UnsafeArchiveError(
            f"{archive}: member {name!r} points outside the archive folder (absolute path "
            "or '..'); refusing to read this archive")
    clean = [p for p in parts if p not in ("", ".")]
    return "/".join(clean)


def _check_size(size: int, name: str, archive: str | os.PathLike, limit: int) -> None:
    if size > limit:
        raise UnsafeArchiveError(f"{archive}: member {name!r} is {size} bytes, over the "
                                 f"{limit}-byte limit for one file")


def _tar_kind(m: tarfile.TarInfo, archive: str | os.PathLike) -> str:
    if m.isdir():
        return "dir"
    if m.isfile():
        return "file"
    kind = "link" if (m.issym() or m.islnk()) else "special file"
    raise UnsafeArchiveError(f"{archive}: member {m.name!r} is a {kind}; dataset archives "
                             "hold only regular files and folders, refusing to read it")


def _zip_kind(info: zipfile.ZipInfo, archive: str | os.PathLike) -> str:
    mode = info.external_attr >> 16
    if mode and stat.S_ISLNK(mode):
        raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a symbolic link; "
                                 "refusing to read this archive")
    return "dir" if info.is_dir() else "file"


def iter_members(path: str | os.PathLike, wanted: Callable[[str], bool] | None = None, *,
                 max_bytes: int = MAX_MEMBER_BYTES,
                 on_progress: Callable[[int], None] | None = None
                 ) -> Iterator[tuple[str, bytes]]:
    """Yield (normalised name, contents) of the regular files, in archive order.

    Tar archives are streamed in one sequential pass (fast for .tar.gz). `wanted`
    filters by name before the data is read; every member is validated either way.
    `on_progress` gets the number of compressed bytes consumed so far.
    """
    path = Path(path)
    if str(path).lower().endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            for info in infos:
                name = safe_member_name(info.filename, path)
                if _zip_kind(info, path) == "dir" or (wanted and not wanted(name)):
                    continue
                _check_size(info.file_size, name, path, max_bytes)
                yield name, zf.read(info)
                if on_progress:
                    on_progress(info.header_offset + info.compress_size)
        return
    with open(path, "rb") as raw:
        try:
            tf = tarfile.open(fileobj=raw, mode="r|*")
        except tarfile.TarError as exc:
            raise ValueError(f"{path}: not a readable tar archive ({exc})") from None
        with tf:
            for m in tf:
                name = safe_member_name(m.name, path)
                if _tar_kind(m, path) == "dir" or (wanted and not wanted(name)):
                    continue
                _check_size(m.size, name, path, max_bytes)
                f = tf.extractfile(m)
                assert f is not None  # regular file
                yield name, f.read()
                if on_progress:
                    on_progress(raw.tell())


def read_member(path: str | os.PathLike, name: str, *,
                max_bytes: int = MAX_MEMBER_BYTES) -> bytes:
    """Contents of one member by its (normalised) name; FileNotFoundError if absent."""
    for got, data in iter_members(path, lambda n: n == name, max_bytes=max_bytes):
        if got == name:
            return data
    raise FileNotFoundError(f"{path}: no member {name!r}")


def member_names(path: str | os.PathLike) -> list[str]:
    """Names of the regular files (validated), without reading their data."""
    path = Path(path)
    names = []
    if str(path).lower().endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                name = safe_member_name(info.filename, path)
                if _zip_kind(info, path) == "file":
                    names.append(name)
        return names
    with tarfile.open(path, mode="r:*") as tf:
        for m in tf:
            name = safe_member_name(m.name, path)
            if _tar_kind(m, path) == "file":
                names.append(name)
    return names


def safe_extract(path: str | os.PathLike, dest: str | os.PathLike, *,
                 max_bytes: int = MAX_MEMBER_BYTES) -> list[Path]:
    """Unpack regular files into `dest` (meant to be inside the cache); returns their paths.

    Every member is validated before anything is written, so a malicious archive
    leaves no partial output. Files are written with our own permissions (0644), not
    the archive's, and each resolved target is checked to lie inside `dest`. The
    members are held in memory meanwhile: meant for modest archives.
    """
    dest = Path(dest).resolve()
    items = list(iter_members(path, max_bytes=max_bytes))  # validates all names/kinds first
    written = []
    for name, _ in items:
        target = (dest / name).resolve()
        if not target.is_relative_to(dest):
            raise UnsafeArchiveError(f"{path}: member {name!r} resolves to {target}, "
                                     f"outside {dest}")
    for name, data in items:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():
            raise UnsafeArchiveError(f"{target} is a symbolic link; not writing through it")
        with open(target, "wb") as f:
            f.write(data)
        os.chmod(target, 0o644)
        written.append(target)
    return written
