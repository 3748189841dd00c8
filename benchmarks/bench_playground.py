"""The Playground's numbers: the NumPy random forest against scikit-learn's (fit time and
accuracy on the same splits, printed as ratios), the cost of one snapshot of every unit,
and the five contrasts' result cards measured without a page (`--contrasts`).

    python build.py bench playground [--quick] [--contrasts] [--seed N]
"""

from __future__ import annotations

import argparse
import html
import os
import platform
import re
import time

import numpy as np


def best_of(fn, repeats: int, *args: object) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best, out


def forest_rows(quick: bool) -> None:
    from sklearn.ensemble import RandomForestClassifier

    from engine.data.tabular import split
    from engine.data.toy import make_playground
    from engine.forest import RandomForest
    from webapp.playground_data import mnist_subset

    sets = []
    for kind in ("circle", "xor", "gauss", "spiral"):
        x, y = make_playground(kind, 500, 0.2, seed=0)
        sets.append((f"{kind} (250 rows, 50 trees)", 50, *split(x, y, 0.5, 0)))
    if not quick:
        x, y, xt, yt = mnist_subset()
        sets.append(("MNIST (2000 rows, 784 px, 10 trees)", 10, x[:2000] / 255, y[:2000],
                     xt[:500] / 255, yt[:500]))
    print(f"{'random forest':38s} {'ours s':>8s} {'sklearn s':>9s} {'ratio':>6s} "
          f"{'ours acc':>8s} {'sk acc':>7s}")
    for name, trees, xtr, ytr, xte, yte in sets:
        reps = 1 if trees == 10 else 3
        t_ours, ours = best_of(RandomForest(trees, seed=0).fit, reps, xtr, ytr)
        t_sk, sk = best_of(RandomForestClassifier(trees, random_state=0, n_jobs=1).fit, reps,
                           xtr, ytr)
        print(f"{name:38s} {t_ours:8.3f} {t_sk:9.3f} {t_ours / t_sk:6.1f} "
              f"{ours.score(xte, yte):8.3f} {sk.score(xte, yte):7.3f}")


def snapshot_rows() -> None:
    from engine import explain, mlp
    from webapp.playground_run import GRID

    points, _ = explain.grid_2d((-6, 6), (-6, 6), GRID)
    x = np.random.default_rng(0).uniform(-6, 6, (300, 2)).astype(np.float32)
    print(f"\n{'snapshot of every unit (CPU)':38s} {'ms':>8s}")
    for hidden in ((8, 8), (32, 32, 32), (256,) * 8):
        r = mlp.Recipe(hidden=hidden)
        b = mlp.build(r, x, np.arange(300) % 2)
        secs, _ = best_of(mlp.snapshot, 3, b.model, b.features(x), b.features(points),
                          "classification")
        print(f"{'x'.join(map(str, hidden)) + f' on a {GRID}x{GRID} grid':38s} "
              f"{1000 * secs:8.1f}")


def contrast_cards(seed: int) -> None:
    from webapp.playground_experiments import EXPERIMENTS, result_card
    from webapp.playground_run import Run, Settings

    print("\nthe five contrasts (no page; sequential runs):")
    for exp in EXPERIMENTS.values():
        exp = exp.with_seed(seed)
        results = []
        for side in (exp.traditional, exp.modern):
            run = Run(1, Settings(exp.data, side.recipe, noise=exp.noise, device=side.device,
                                  forest=False, name=side.label))
            run._main()
            if run.result is None:
                raise RuntimeError(f"{exp.key} / {side.label} failed: "
                                   f"{list(run.events.queue)[-1]}")
            results.append(run.result)
        card = result_card(exp, *results, seed)
        text = html.unescape(re.sub(r"<[^>]+>", " ", card))
        print("  " + re.sub(r"\s+", " ", text).strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="skip the MNIST forest")
    parser.add_argument("--contrasts", action="store_true", help="run the five contrasts")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.1f}")
    forest_rows(args.quick)
    snapshot_rows()
    if args.contrasts:
        contrast_cards(args.seed)


if __name__ == "__main__":
    main()
