"""Suite-wide settings.

Tests never touch the network: DEMYSTIFY_OFFLINE makes every dataset loader raise its
"put these files there" error instead of downloading (set it to 0 to opt out). Download
tests serve files from a local http.server and re-enable downloads explicitly.
"""

import os
from pathlib import Path

import pytest

from tests.data_helpers import LocalServer

os.environ.setdefault("DEMYSTIFY_OFFLINE", "1")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`build.py test` runs the whole suite on two workers), tests that
    share an expensive fixture stay on one worker, in order: the offline site (built once
    a run), the online site, and each browser module's server and Chromium. The other
    tests spread over the workers while a browser waits on its page. The groups run first
    (xdist hands out work in this order): a long group started last left one worker
    running it alone for minutes."""
    grouped = set()
    for item in items:
        names = item.fixturenames
        build = getattr(item, "callspec", None) and item.callspec.params.get("build")
        if "offline_site" in names or build == "static":
            group = "offline-site"
        elif "online_site" in names:
            group = "online-site"
        elif item.get_closest_marker("browser"):
            group = f"browser:{item.module.__name__}"
        else:
            continue
        item.add_marker(pytest.mark.xdist_group(group))
        grouped.add(item.nodeid)
    items.sort(key=lambda item: item.nodeid not in grouped)  # stable: modules stay in order


@pytest.fixture
def local_server(tmp_path, monkeypatch):
    """(served folder, base URL); downloads re-enabled, proxies bypassed for 127.0.0.1."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("DEMYSTIFY_OFFLINE", "0")
    folder = tmp_path / "served"
    folder.mkdir()
    server = LocalServer(folder)
    try:
        yield folder, server.url
    finally:
        server.close()


@pytest.fixture(scope="session")
def offline_site(tmp_path_factory) -> Path:
    """One offline static build (`build.py site --offline`, PYODIDE_DIST's release) shared
    by every module that drives it in Chromium: a build costs CI 20-35 s. DEMYSTIFY_SITE
    names a site already built to skip it."""
    from tests.site_helpers import build_site, pyodide_release

    prebuilt = os.environ.get("DEMYSTIFY_SITE")
    if prebuilt:
        folder = Path(prebuilt)
        assert (folder / "site.json").is_file(), f"DEMYSTIFY_SITE={prebuilt}: no site there"
        return folder
    return build_site(tmp_path_factory.mktemp("site") / "offline", "--offline",
                      "--pyodide-dist", str(pyodide_release()))


@pytest.fixture(scope="session")
def online_site(tmp_path_factory) -> Path:
    """One online (CDN) build with the PWA files, shared by the file checks
    (tests/test_site_build.py) and the hosted pages in Chromium
    (tests/test_browser_site_hosted.py): each built its own, 17-29 s of CI."""
    from tests.site_helpers import build_site, online_version

    return build_site(tmp_path_factory.mktemp("site") / "online", "--pwa",
                      "--pyodide-version", online_version())
