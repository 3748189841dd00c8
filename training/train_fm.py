"""Train the web app's movie recommender: a Bayesian FM on MovieLens 100K (u1.base).

Writes webapp/models/fm_movielens.npz (plain arrays, no pickle), movies.json (id, title,
year, genres) and the model card fm_movielens.md / .json with the u1.test RMSE. Training
on u1.base (not all 100K ratings) keeps that RMSE an honest held-out number that the
tests can reproduce.

    python build.py train fm [--k 32] [--sweeps 200] [--chains 2] [--seed 0] [--no-rated-by]
                             [--out webapp/models]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.data.movielens import load_movielens100k  # noqa: E402
from engine.fm import FactorizationMachine  # noqa: E402


class Tee(io.TextIOBase):
    """Writes to several streams (the console and the model card's log)."""

    def __init__(self, *streams: io.TextIOBase) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for s in self.streams:
            s.write(text)
        return len(text)

    def flush(self) -> None:
        for s in self.streams:
            s.flush()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None,
                    help="ml-100k folder or zip (default: $DEMYSTIFY_DATA/movielens)")
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--sweeps", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chains", type=int, default=2,
                    help="independent MCMC chains (seeds seed, seed+1, ...) averaged into "
                         "one FM (factors concatenated)")
    ap.add_argument("--no-rated-by", dest="rated_by", action="store_false",
                    help="leave out the movie side's implicit feedback (who rated it)")
    ap.add_argument("--out", default=str(ROOT / "webapp" / "models"))
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    ml = load_movielens100k(a.data)
    t0 = time.perf_counter()
    log = io.StringIO()
    chains = []
    with contextlib.redirect_stdout(Tee(sys.stdout, log)):
        for c in range(a.chains):
            print(f"chain {c + 1}/{a.chains} (seed {a.seed + c})", flush=True)
            chains.append(FactorizationMachine.fit_movielens(
                ml, "u1.base", k=a.k, n_iter=a.sweeps, burn_in=max(a.sweeps // 4, 1),
                seed=a.seed + c, rated_by=a.rated_by, verbose=True))
    model = chains[0] if a.chains == 1 else FactorizationMachine.average(chains)
    write_outputs(model, ml, out, a, time.perf_counter() - t0, log.getvalue())


def write_outputs(model: FactorizationMachine, ml: object, out: Path, a: argparse.Namespace,
                  fit_s: float, log: str) -> None:
    """The model file, movies.json and the model card (with the u1.test RMSE and log)."""
    te = ml.split(1)[1]
    y = te.rating.astype(np.float64)
    p = model.predict_ids(ml.users.id[te.user], ml.movies.id[te.item])
    rmse = float(np.sqrt(np.mean((p - y) ** 2)))
    mae = float(np.mean(np.abs(p - y)))
    path = out / "fm_movielens.npz"
    model.save(path)
    mv = ml.movies
    movies = [{"id": int(m),
               "title": t.rsplit(" (", 1)[0] if yr > 0 and t.endswith(f"({yr})") else t,
               "year": int(yr) if yr > 0 else None, "genres": gen}
              for m, t, yr, gen in zip(mv.id, mv.title, mv.year, mv.genres)]
    (out / "movies.json").write_text(json.dumps(movies, separators=(",", ":"),
                                                ensure_ascii=False))
    card = {
        "model": "Bayesian factorization machine (Gibbs sampling, posterior-mean parameters"
                 + (f"; {a.chains} chains averaged, factors concatenated)" if a.chains > 1
                    else ")"),
        "file": path.name, "data": "MovieLens 100K (GroupLens), official split u1",
        "train": "u1.base (80,000 ratings)", "test": "u1.test (20,000 ratings)",
        "features": "one-hot user, age bucket, gender, occupation, rated movies "
                    "(1/sqrt(n) each); one-hot movie, genres (1/sqrt(n)), release-year bucket"
                    + (", the users who rated it (1/sqrt(n) each)" if a.rated_by else ""),
        "interactions": "user side x movie side (second order)",
        "k": a.k, "chains": a.chains, "factors_shipped": model.k, "sweeps": a.sweeps,
        "burn_in": max(a.sweeps // 4, 1), "seed": a.seed,
        "u1_test_rmse": round(rmse, 4), "u1_test_mae": round(mae, 4),
        "fit_seconds": round(fit_s, 1), "cpus": __import__("os").cpu_count(),
        "python": platform.python_version(), "numpy": np.__version__,
        "command": f"python build.py train fm --k {a.k} --sweeps {a.sweeps} --seed {a.seed}"
                   + (f" --chains {a.chains}" if a.chains > 1 else "")
                   + ("" if a.rated_by else " --no-rated-by"),
        "best_published_u1_rmse": "0.8889 (GLocal-K, Han et al. 2021)",
        "predictions": "clipped to [1, 5]",
    }
    (out / "fm_movielens.json").write_text(json.dumps(card, indent=1) + "\n")
    md = [
        "# Model card: fm_movielens", "",
        "A second-order factorization machine (Rendle 2010) fitted by Gibbs sampling "
        "(Bayesian FM, Rendle 2012); the shipped parameters are the posterior means.", "",
        "| | |", "|---|---|",
    ] + [f"| {k} | {v} |" for k, v in card.items()] + [
        "",
        "Use: `FactorizationMachine.load('webapp/models/fm_movielens.npz')`, then "
        "`recommend({movie_id: stars, ...}, k)` (fold-in of a new user, no retraining), "
        "`explain(user, movie_id)`, `similar(movie_id, k)`.",
        "Limits: trained on 1990s ratings of 943 users; movies with few ratings are "
        "uncertain (recommend() skips movies with fewer than 5 training ratings).",
        f"Cross-validation: `python build.py bench fm --k {a.k} --sweeps {a.sweeps} "
        f"--chains {a.chains}` runs this fit on each official fold u1..u5 (figures in the "
        "README).", "",
        "## Training log", "", "```", *log.rstrip().splitlines(), "```", "",
    ]
    (out / "fm_movielens.md").write_text("\n".join(md))
    print(f"u1.test RMSE {rmse:.4f}  MAE {mae:.4f}  fit {fit_s:.1f} s  -> {path} "
          f"({path.stat().st_size // 1024} KB), movies.json "
          f"({(out / 'movies.json').stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
