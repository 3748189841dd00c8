"""--pwa: a web-app manifest and Panel's caching service worker (a new cache per build)."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path


def write(out: Path, slugs: list[str], title: str) -> list[Path]:
    from panel.io.convert import PWA_IMAGES, SERVICE_WORKER_TEMPLATE, build_pwa_manifest

    (out / "images").mkdir(exist_ok=True)
    for img in PWA_IMAGES:
        shutil.copy2(img, out / "images" / img.name)
    (out / "site.webmanifest").write_text(
        build_pwa_manifest({s: f"{s}.html" for s in slugs}, title=title), encoding="utf-8")
    pre = ", ".join(repr(f"images/{img.name}") for img in PWA_IMAGES)
    (out / "serviceWorker.js").write_text(SERVICE_WORKER_TEMPLATE.render(
        uuid=uuid.uuid4().hex, name=title, pre_cache=pre), encoding="utf-8")
    return [out / "site.webmanifest", out / "serviceWorker.js"]
