"""Inpainting ceilings: how much PSNR can the noise in the truth itself leave to win?

The bench scores PSNR on the whole image against the (noisy) original, with the observed
pixels exact, so its MSE is (missing share) x (MSE at the missing pixels). Sensor or JPEG
noise at a missing pixel cannot be predicted from the observed ones (if it is white), so no
method's MSE at the missing pixels goes below the noise variance sigma^2 there:

    ceiling = -10 log10(missing share x mean over channels of sigma_c^2)

sigma_c per channel by three estimators: scikit-image's estimate_sigma (Donoho's MAD of
the finest diagonal wavelet coefficients; it needs PyWavelets and is skipped without it),
Immerkaer's Laplacian-difference estimator (1996) and Donoho's median (MAD) on the same
filter. All three read texture as noise on textured images (sigma too high, ceiling too
low: conservative); the ceiling uses the largest. For scale, a "blind-spot oracle": each
pixel predicted from its 5x5 neighbours in all three channels (never the pixel itself) by
per-channel least squares fitted on the whole true image, i.e. a predictor that saw every
other pixel and knew the best linear filter for them (not a strict bound either way).
A denoised original is no such oracle: a denoiser's output keeps part of the pixel's own
noise (non-local means weighs the pixel's own patch most), so against the noisy truth it
scores higher the less it denoises (measured on starry_night at 50% loss: 37.2 dB with
h = 0.8 x 8.2/255, 42.3 dB with h = 0.8 x 5.9/255).

    python build.py bench inpaint_ceiling [--side 512] [--images a.jpg,...] [--masks ...]
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from bench_inpaint import MASKS, data_root, load_square


def _laplace(a: np.ndarray) -> np.ndarray:
    """img * [[1,-2,1],[-2,4,-2],[1,-2,1]]: white noise of sigma comes out at 6 sigma,
    smooth shading (planes, ramps) at 0."""
    return (a[:-2, :-2] - 2 * a[:-2, 1:-1] + a[:-2, 2:] - 2 * a[1:-1, :-2]
            + 4 * a[1:-1, 1:-1] - 2 * a[1:-1, 2:] + a[2:, :-2] - 2 * a[2:, 1:-1] + a[2:, 2:])


def sigma_immerkaer(img: np.ndarray) -> np.ndarray:
    """Per channel: sqrt(pi/2) / 6 x mean |Laplace difference| (Immerkaer 1996)."""
    return np.sqrt(np.pi / 2.0) / 6.0 * np.abs(_laplace(img)).mean((0, 1))


def sigma_mad(img: np.ndarray) -> np.ndarray:
    """Per channel: median |Laplace difference| / (6 x 0.6745), Donoho's robust MAD on the
    same filter: edges and texture, a minority of pixels, barely move the median."""
    return np.median(np.abs(_laplace(img)), axis=(0, 1)) / (6.0 * 0.6745)


def blind_spot(img: np.ndarray, r: int = 2) -> np.ndarray:
    """Each pixel from its (2r+1)^2 - 1 neighbours in every channel, least squares on img."""
    h, w, c = img.shape
    p = np.pad(img, ((r, r), (r, r), (0, 0)), mode="reflect")
    cols = [p[r + dy:r + dy + h, r + dx:r + dx + w] for dy in range(-r, r + 1)
            for dx in range(-r, r + 1) if dy or dx]
    X = np.concatenate([np.ones((h, w, 1))] + cols, -1).reshape(h * w, -1)
    y = img.reshape(h * w, c)
    return (X @ np.linalg.lstsq(X, y, rcond=None)[0]).reshape(h, w, c)


def db(mse: float) -> float:
    return 10.0 * np.log10(1.0 / mse)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=512)
    ap.add_argument("--images", default="starry_night.jpg,baboon.jpg,fruits.jpg")
    ap.add_argument("--masks", default="random50,random80,random95")
    a = ap.parse_args()
    from skimage.restoration import inpaint_biharmonic

    try:
        import pywt  # noqa: F401
        from skimage.restoration import estimate_sigma
    except ImportError:
        estimate_sigma = None
        print("PyWavelets is not installed: scikit-image's estimate_sigma is skipped")
    root = data_root()
    print(f"Inpainting ceilings, {a.side}x{a.side} colour (load average "
          f"{os.getloadavg()[0]:.2f}); sigma in 8-bit levels (x 255) per R, G, B")
    rows = []
    for name in a.images.split(","):
        img = load_square(root / "images" / name, a.side)
        sig = {"Immerkaer": sigma_immerkaer(img), "Laplace MAD": sigma_mad(img)}
        if estimate_sigma is not None:
            sig["estimate_sigma"] = np.asarray(estimate_sigma(img, channel_axis=-1,
                                                              average_sigmas=False))
        for k, v in sig.items():
            print(f"  {name:18s}sigma {k:15s}" + " ".join(f"{s * 255:5.2f}" for s in v))
        var = max(float((v ** 2).mean()) for v in sig.values())
        bs = blind_spot(img)
        for mname in a.masks.split(","):
            m = MASKS[mname](img.shape)
            f = float(m.mean())
            ref = db(float(((np.clip(inpaint_biharmonic(img, m, channel_axis=-1), 0, 1)
                             - img) ** 2).mean()))
            e_b = float(((bs - img)[m] ** 2).mean())
            rows.append((name, mname, ref + 1.0, db(f * var), db(f * e_b)))
            print(f"  {name:18s}{mname:10s}biharmonic + 1 dB {ref + 1:6.2f}   noise ceiling "
                  f"{db(f * var):6.2f}   blind-spot oracle {db(f * e_b):6.2f}", flush=True)
    print("\n| image | loss | biharmonic + 1 dB | noise ceiling | blind-spot oracle |\n"
          "|---|---|---|---|---|")
    for name, mname, *v in rows:
        print(f"| {name.removesuffix('.jpg')} | {mname.removeprefix('random')}% | "
              + " | ".join(f"{x:.2f}" for x in v) + " |")


if __name__ == "__main__":
    main()
