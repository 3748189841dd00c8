"""Where datasets live, and fetching missing official files with checksum verification.

A dataset called `name` lives in exactly one folder, chosen in this order (every loader
follows it):

1. an explicit `root=` argument (a folder, or for some loaders the archive itself);
2. `$DEMYSTIFY_DATA/<name>` when `DEMYSTIFY_DATA` is set;
3. the per-user cache, `cache_root()/<name>`.

One folder, not a search path, so which copy is used is never a surprise. Missing
official files are downloaded into that folder, written to a `.part` file first and
renamed only after the checksum matched, so a failed or tampered download never looks
like a valid file. Set `DEMYSTIFY_OFFLINE=1` (or pass `download=False`) to forbid
downloads; a missing dataset then raises `DataUnavailableError` naming the files to put
where, as it does when the network is unreachable. Derived data (decoded image arrays)
always goes to the per-user cache.
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

DATA_ENV = "DEMYSTIFY_DATA"
CACHE_ENV = "DEMYSTIFY_CACHE"
OFFLINE_ENV = "DEMYSTIFY_OFFLINE"

_USER_AGENT = "demystify-dataset-loader/0.1"
_CHUNK = 1 << 20


class DataUnavailableError(FileNotFoundError):
    """A dataset is not on disk and could not be downloaded; the message says what to do.

    `reason` says why the download was not possible (offline, disabled, HTTP error).
    """

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class ChecksumError(ValueError):
    """A downloaded file does not match its published checksum (corrupt or tampered)."""


@dataclass(frozen=True)
class RemoteFile:
    """One official file: its name on disk, mirror URLs (tried in order) and checksums.

    At least one of `md5` / `sha256` must be given: an unverified download is refused,
    because a loader that trusts whatever a mirror serves is a supply-chain hole.
    """

    name: str
    urls: tuple[str, ...]
    md5: str | None = None
    sha256: str | None = None

    def __post_init__(self) -> None:
        if not (self.md5 or self.sha256):
            raise ValueError(f"RemoteFile {self.name!r}: give md5 or sha256; unverified "
                             "downloads are not allowed")
        if not self.urls:
            raise ValueError(f"RemoteFile {self.name!r}: no URLs")


def data_env_root() -> Path | None:
    """The folder named by `DEMYSTIFY_DATA`, or None when unset."""
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else None


def cache_root() -> Path:
    """Per-user cache folder for downloads and decoded arrays.

    `DEMYSTIFY_CACHE` wins; else `$XDG_CACHE_HOME/demystify`; else the platform's
    convention (~/.cache on Linux, ~/Library/Caches on macOS, %LOCALAPPDATA% on Windows).
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "demystify"
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "demystify" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "demystify"
    return Path.home() / ".cache" / "demystify"


def dataset_dir(name: str, root: str | os.PathLike | None = None) -> Path:
    """The folder (or file, when `root` names one) for dataset `name`; see module doc."""
    if root is not None:
        return Path(root).expanduser()
    env = data_env_root()
    return env / name if env is not None else cache_root() / name


def downloads_allowed(download: bool = True) -> bool:
    """False when the caller or `DEMYSTIFY_OFFLINE` (1/true/yes) forbids network access."""
    off = os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}
    return download and not off


def file_digest(path: str | os.PathLike, algorithm: str) -> str:
    """Hex digest of a file, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def unavailable(dataset: str, files: Iterable[str], folder: Path,
                reason: str = "") -> DataUnavailableError:
    """The error for a dataset that is neither on disk nor downloadable."""
    return DataUnavailableError(missing_message(dataset, files, folder, reason), reason)


def missing_message(dataset: str, files: Iterable[str], folder: Path, reason: str = "") -> str:
    """What to put where, and why it could not be downloaded."""
    env = data_env_root()
    if env is not None and folder.parent == env:
        origin = f"the {folder.name}/ folder of {DATA_ENV}={env}"
    elif folder.parent == cache_root():
        origin = (f"the per-user cache; or set {DATA_ENV} to a folder containing "
                  f"{folder.name}/, or pass root=")
    else:
        origin = "given as root="
    text = f"{dataset} not found: put {', '.join(files)} into {folder} ({origin})"
    if reason:
        text += f". Download was not possible: {reason}"
    return text


def _verify(path: Path, remote: RemoteFile, url: str) -> None:
    for algo in ("sha256", "md5"):
        expected = getattr(remote, algo)
        if expected:
            got = file_digest(path, algo)
            if got.lower() != expected.lower():
                raise ChecksumError(
                    f"{remote.name} downloaded from {url} has {algo} {got}, expected "
                    f"{expected}: the download is corrupt or the mirror serves a different "
                    "file; it was deleted. Try again later or fetch it by hand and check "
                    "the checksum.")


def _copy_url(url: str, dest: Path, timeout: float, progress: bool) -> None:
    req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    with urllib.request.urlopen(req, timeout=timeout) as resp, open(dest, "wb") as out:
        total = resp.headers.get("Content-Length")
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=int(total) if total else None, unit="B", unit_scale=True,
                       desc=f"download {dest.name.removesuffix('.part')}", leave=False)
        try:
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()


def fetch(remote: RemoteFile, folder: str | os.PathLike, *, dataset: str = "dataset",
          timeout: float = 30.0, progress: bool = True, download: bool = True) -> Path:
    """Return `folder/remote.name`, downloading and verifying it first if it is missing.

    An existing file is trusted (the user may have put a re-packed copy there on
    purpose). Mirrors are tried in order; a checksum mismatch on every mirror raises
    `ChecksumError`, network failures raise `DataUnavailableError`.
    """
    folder = Path(folder)
    target = folder / remote.name
    if target.is_file():
        return target
    if not downloads_allowed(download):
        raise unavailable(dataset, [remote.name], folder,
                          f"downloads are disabled (download=False or {OFFLINE_ENV} is set)")
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise unavailable(dataset, [remote.name], folder,
                          f"cannot create {folder}: {exc}") from None
    part = folder / (remote.name + ".part")
    failures: list[str] = []
    mismatches: list[ChecksumError] = []
    for url in remote.urls:
        try:
            _copy_url(url, part, timeout, progress)
            _verify(part, remote, url)
        except ChecksumError as exc:
            part.unlink(missing_ok=True)
            mismatches.append(exc)
            failures.append(f"{url}: checksum mismatch")
            continue
        except (urllib.error.URLError, OSError, ValueError) as exc:
            part.unlink(missing_ok=True)
            failures.append(f"{url}: {getattr(exc, 'reason', None) or exc}")
            continue
        os.replace(part, target)
        return target
    if created:  # leave no empty folder behind a failed download
        try:
            folder.rmdir()
        except OSError:
            pass
    if mismatches:
        others = [f for f in failures if not f.endswith("checksum mismatch")]
        raise ChecksumError("; ".join(str(m) for m in mismatches)
                            + (f" (other mirrors failed: {'; '.join(others)})" if others else ""))
    raise unavailable(dataset, [remote.name], folder, "; ".join(failures))
