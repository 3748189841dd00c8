"""Suite-wide settings.

Tests never touch the network: DEMYSTIFY_OFFLINE makes every dataset loader raise its
"put these files there" error instead of downloading (set it to 0 to opt out). Download
tests serve files from a local http.server and re-enable downloads explicitly.
"""

import os

import pytest

from tests.data_helpers import LocalServer

os.environ.setdefault("DEMYSTIFY_OFFLINE", "1")


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
