"""FactorizationMachine: a second-order FM on the engine's Tensors, plus the MovieLens API.

    y(x) = w0 + sum_j w_j x_j + sum_{j<l} <v_j, v_l> x_j x_l

A sparse row is a padded pair (idx, val) of shape (batch, max_nnz) (padding: val 0), so
the model is two embedding gathers plus the fused `fm_pairwise` primitive (a WGSL kernel
on the GPU, forward and backward): it runs, and differentiates, on any device. The
pairwise sum uses Rendle's O(k n) identity
    sum_{j<l} <v_j, v_l> x_j x_l = 1/2 sum_f [(sum_j v_jf x_j)^2 - sum_j v_jf^2 x_j^2].
With interactions="cross" only pairs across the two sides (user side x movie side) count:
    y = w0 + sum_j w_j x_j + <sum_{user side} v x, sum_{movie side} v x>
which is what the MCMC solver (engine.fm.mcmc) fits; within-side pairs only add a
per-user / per-movie constant that the one-hot biases model anyway.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .. import nn
from ..autograd import no_grad
from ..functions import FMPairwise
from ..nn import functional as F
from ..nn.parameter import Parameter
from ..sparse import CSR, as_csr, issparse
from ..tensor import Tensor
from .movielens import Features, build_features, load, ratings

FORMAT = "demystify-fm-1"


def padded_rows(X: CSR, min_width: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """CSR rows -> (idx, val) arrays of shape (rows, max_nnz); padding is (0, 0.0)."""
    X = as_csr(X)
    counts = np.diff(X.indptr)
    width = max(int(counts.max(initial=0)), min_width)
    idx = np.zeros((X.shape[0], width), np.int64)
    val = np.zeros((X.shape[0], width), np.float64)
    pos = np.arange(X.nnz) - np.repeat(X.indptr[:-1], counts)
    r = np.repeat(np.arange(X.shape[0]), counts)
    idx[r, pos] = X.indices
    val[r, pos] = X.data
    return idx, val


def fm_forward(idx: Any, val: Tensor, w0: Tensor, w: Tensor, V: Tensor,
               side: Tensor | None = None) -> Tensor:
    """The FM score of padded rows (B, m): w0 + linear + pairwise, in O(B m k).

    The pairwise term is the fused FMPairwise primitive (one kernel forward, two backward).
    side: None for all pairs, or an (n, 1) 0/1 tensor (1 = movie side) for cross pairs,
    which are all pairs minus the pairs within each side: three fused calls, no
    (B, m, k) temporaries beyond the gathered rows."""
    Vg = F.embedding(idx, V)                                          # (B, m, k)
    lin = (F.embedding(idx, w).reshape(*val.shape) * val).sum(axis=1)  # (B,)
    pair = FMPairwise.apply(Vg, val)
    if side is not None:
        x_movie = F.embedding(idx, side).reshape(*val.shape) * val
        x_user = val - x_movie
        pair = pair - FMPairwise.apply(Vg, x_user) - FMPairwise.apply(Vg, x_movie)
    return lin + pair + w0


def _check_rating(movie: Any, r: Any) -> float:
    try:
        v = float(r)
    except (TypeError, ValueError):
        raise ValueError(f"rating {r!r} for movie {movie!r} is not a number; "
                         "use 1..5 stars") from None
    if not np.isfinite(v) or not 1.0 <= v <= 5.0:
        raise ValueError(f"rating {r!r} for movie {movie!r} is outside the scale 1..5")
    return v


class FactorizationMachine(nn.Module):
    """Second-order FM with global bias, linear weights and k factors per feature.

    l2: (bias, linear, factors) penalties; linear/factors may also be arrays of shape
    (n_features,) to regularise feature groups differently.
    """

    def __init__(self, n_features: int, k: int = 16, *, interactions: str = "all",
                 side: np.ndarray | None = None, l2: tuple[Any, Any, Any] = (0.0, 1e-4, 1e-3),
                 init_std: float = 0.01, clip: tuple[float, float] | None = None,
                 seed: int = 0, device: str | None = None, dtype: str = "float32") -> None:
        super().__init__()
        if n_features < 1 or k < 1:
            raise ValueError(f"need n_features >= 1 and k >= 1, got {n_features}, {k}")
        if interactions not in ("all", "cross"):
            raise ValueError(f"interactions must be 'all' or 'cross', not {interactions!r}")
        if interactions == "cross":
            if side is None or len(side) != n_features:
                raise ValueError("interactions='cross' needs side: an array of 0/1 per feature "
                                 f"(length {n_features})")
        self.n_features, self.k = int(n_features), int(k)
        self.interactions = interactions
        self.side = None if side is None else np.asarray(side, np.int8)
        self.l2 = l2
        self.clip = clip
        self.dtype = dtype
        rng = np.random.default_rng(seed)
        self.w0 = Parameter(np.zeros(1), device=device, dtype=dtype)
        self.w = Parameter(np.zeros((n_features, 1)), device=device, dtype=dtype)
        self.V = Parameter(rng.normal(0, init_std, (n_features, k)), device=device, dtype=dtype)
        # MovieLens metadata (set by fit_movielens / load)
        self.features: Features | None = None
        self.prior_mu: np.ndarray | None = None
        self.prior_lam: np.ndarray | None = None
        self.alpha = 1.0
        self.info: dict[str, Any] = {}
        # host copies the MovieLens helpers reuse (a page asks for many explanations at
        # once); emptied whenever the parameters change (set_parameters, each fit epoch)
        self._host: dict[str, np.ndarray] = {}

    # -- the model ---------------------------------------------------------------------
    def forward(self, idx: Any, val: Any) -> Tensor:
        """Scores for padded sparse rows: idx (B, m) ints, val (B, m) floats -> (B,)."""
        dev = self.V.device
        if not isinstance(val, Tensor):
            val = Tensor(np.asarray(val), device=dev, dtype=self.V.dtype)
        ishape = tuple(idx.shape) if isinstance(idx, Tensor) else np.shape(idx)
        if ishape != val.shape or val.ndim != 2:
            raise ValueError(f"idx {ishape} and val {val.shape} must have the "
                             "same 2-d shape (batch, max_nnz)")
        side = None
        if self.interactions == "cross":
            side = Tensor(self.side.reshape(-1, 1), device=dev, dtype=self.V.dtype)
        return fm_forward(idx, val, self.w0, self.w, self.V, side)

    def penalty(self) -> Tensor:
        """Sum of the L2 terms, one weight per parameter group (or per feature)."""
        b, lw, lv = self.l2

        def term(p: Tensor, lam: Any) -> Tensor:
            if np.ndim(lam) == 0:
                return (p * p).sum() * float(lam)
            lt = Tensor(np.asarray(lam).reshape(-1, 1), device=p.device, dtype=p.dtype)
            return (p * p * lt).sum()

        return term(self.w0, b) + term(self.w, lw) + term(self.V, lv)

    def predict(self, idx: Any, val: Any, batch_size: int = 8192) -> np.ndarray:
        """Host predictions, clipped to the rating scale when `clip` is set."""
        rows = as_csr(idx) if issparse(idx) else None
        if rows is None:
            idx, val = np.asarray(idx), np.asarray(val)
        n = rows.shape[0] if rows is not None else len(idx)
        out = []
        with no_grad():
            for s in range(0, n, batch_size):
                sl = slice(s, s + batch_size)
                b = padded_rows(rows[sl]) if rows is not None else (idx[sl], val[sl])
                out.append(self(*b).numpy())
        p = np.concatenate(out) if out else np.zeros(0)
        return np.clip(p, *self.clip) if self.clip else p

    def fit(self, idx: Any, val: Any, y: Any, *, optimizer: str = "adam", lr: float = 0.01,
            epochs: int = 10, batch_size: int = 1024, seed: int = 0,
            verbose: bool = False,
            callback: Callable[[int, float], bool | None] | None = None) -> list[float]:
        """Minimise mean squared error + penalty()/N by minibatch SGD or Adam (autograd).

        idx/val: padded arrays (N, m) or a CSR matrix of rows (engine.sparse; val None).
        callback(epoch, loss) runs after each epoch (a live loss curve); returning False
        stops the fit there (cancel), keeping the parameters reached. Returns the loss per
        epoch."""
        hist: list[float] = []
        for loss in self.fit_iter(idx, val, y, optimizer=optimizer, lr=lr, epochs=epochs,
                                  batch_size=batch_size, seed=seed):
            hist.append(loss)
            if verbose:
                print(f"  epoch {len(hist)}: loss {loss:.4f}", flush=True)
            if callback is not None and callback(len(hist), loss) is False:
                break
        return hist

    def fit_iter(self, idx: Any, val: Any, y: Any, *, optimizer: str = "adam",
                 lr: float = 0.01, epochs: int = 10, batch_size: int = 1024,
                 seed: int = 0) -> Iterator[float]:
        """fit() one epoch at a time: yields each epoch's mean loss, so a caller (a page in
        the browser, which has no threads) can show it, yield to its event loop or stop."""
        from .. import optim

        rows = as_csr(idx) if issparse(idx) else None
        if rows is None:
            idx, val = np.asarray(idx), np.asarray(val)

        def batch(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            # CSR rows are padded per batch: long rows (implicit feedback) stay affordable
            return padded_rows(rows[b]) if rows is not None else (idx[b], val[b])

        y = np.asarray(y, np.float64)
        n_rows = rows.shape[0] if rows is not None else len(idx)
        if n_rows != len(y) or n_rows == 0:
            raise ValueError(f"need as many targets as rows and at least one: {n_rows} rows, "
                             f"{len(y)} targets")
        if optimizer == "adam":
            opt = optim.Adam(self.parameters(), lr=lr)
        elif optimizer == "sgd":
            opt = optim.SGD(self.parameters(), lr=lr, momentum=0.9)
        else:
            raise ValueError(f"optimizer must be 'adam' or 'sgd', not {optimizer!r}")
        if abs(float(self.w0.numpy()[0])) == 0.0:
            with no_grad():
                self.w0.data = Tensor(np.full(1, y.mean()), device=self.w0.device,
                                      dtype=self.w0.dtype).data
        rng = np.random.default_rng(seed)
        n = len(y)
        for _ in range(epochs):
            perm = rng.permutation(n)
            tot = 0.0
            for s in range(0, n, batch_size):
                b = perm[s:s + batch_size]
                pred = self(*batch(b))
                target = Tensor(y[b], device=pred.device, dtype=pred.dtype)
                loss = F.mse_loss(pred, target) + self.penalty() * (1.0 / n)
                opt.zero_grad()
                loss.backward()
                opt.step()
                tot += float(loss.item()) * len(b)
            self._host.clear()
            yield tot / n

    # -- parameters as host arrays ------------------------------------------------------
    def _theta(self) -> np.ndarray:
        """(n, k+1) host array [w, V] (what the MovieLens helpers compute with)."""
        if "theta" not in self._host:
            self._host["theta"] = np.concatenate([self.w.numpy(), self.V.numpy()],
                                                 axis=1).astype(np.float64)
        return self._host["theta"]

    def set_parameters(self, w0: float, w: np.ndarray, V: np.ndarray) -> None:
        self._host.clear()
        dev, dt = self.V.device, self.dtype
        self.w0 = Parameter(np.array([w0], np.float64), device=dev, dtype=dt)
        self.w = Parameter(np.asarray(w, np.float64).reshape(-1, 1), device=dev, dtype=dt)
        self.V = Parameter(np.asarray(V, np.float64), device=dev, dtype=dt)

    # -- MovieLens ----------------------------------------------------------------------
    @classmethod
    def fit_movielens(cls, root: Any = None, train: str | int = "u1.base",
                      *, solver: str = "mcmc", k: int = 32, n_iter: int = 150,
                      burn_in: int = 40, seed: int = 0, implicit: bool = True,
                      rated_by: bool = False,
                      epochs: int = 10, lr: float = 0.005, verbose: bool = False,
                      time_budget: float | None = None) -> FactorizationMachine:
        """Fit on an official ratings file (u1.base ... or u.data) of MovieLens 100K.

        root: a loaded engine.data MovieLens100K, or where to load it from (see
        engine.data.movielens.load_movielens100k)."""
        ml = load(root)
        tr = ratings(ml, train)
        feats = build_features(ml, tr, implicit=implicit, rated_by=rated_by)
        u, i, y = tr.user, tr.item, tr.rating.astype(np.float64)  # entity rows = 0-based ids
        t0 = time.perf_counter()
        model = cls(feats.n, k, interactions="cross", side=feats.side, clip=(1.0, 5.0),
                    seed=seed)
        model.features = feats
        if solver == "mcmc":
            from .mcmc import fit_mcmc

            res = fit_mcmc(feats.X_user, feats.X_movie, feats.group, feats.group_onehot,
                           feats.side, u, i, y, k=k, n_iter=n_iter, burn_in=burn_in,
                           seed=seed, verbose=verbose, time_budget=time_budget)
            model.set_parameters(res.w0, res.theta[:, 0], res.theta[:, 1:])
            model.prior_mu, model.prior_lam, model.alpha = res.mu, res.lam, res.alpha
        elif solver in ("adam", "sgd"):
            rows = feats.X_user[u] + feats.X_movie[i]
            model.l2 = (0.0, 0.02, 0.05)
            model.fit(rows, None, y, optimizer=solver, lr=lr, epochs=epochs,
                      batch_size=512, seed=seed, verbose=verbose)
            ng = len(feats.group_names)
            model.prior_mu = np.zeros((ng, k + 1))
            model.prior_lam = np.full((ng, k + 1), 25.0)
            err = model.predict_ids(feats.user_ids[u], feats.movie_ids[i]) - y
            model.alpha = 1.0 / max(float(np.mean(err ** 2)), 0.1)
        else:
            raise ValueError(f"solver must be 'mcmc', 'adam' or 'sgd', not {solver!r}")
        model.info = {"train": train, "solver": solver, "k": k, "seed": seed,
                      "n_iter": n_iter, "burn_in": burn_in, "implicit": implicit,
                      "rated_by": rated_by,
                      "fit_seconds": round(time.perf_counter() - t0, 2)}
        return model

    @classmethod
    def average(cls, models: list[FactorizationMachine]) -> FactorizationMachine:
        """One FM whose predictions are the mean of `models`' (same features): biases
        averaged, factors concatenated and scaled by 1/sqrt(n), so every pairwise term is
        the mean of theirs (k = sum of their k). Why: posterior means of separate MCMC
        chains are different, equally good explanations of the data; averaging them is
        an ensemble that still folds in, explains and runs as one FM."""
        if not models:
            raise ValueError("average() needs at least one model")
        first = models[0]
        n = len(models)
        for m in models[1:]:
            if m.n_features != first.n_features or m.interactions != first.interactions:
                raise ValueError("average() needs models over the same features")
        scale = 1.0 / np.sqrt(n)
        ths = [m._theta() for m in models]
        out = cls(first.n_features, sum(m.k for m in models),
                  interactions=first.interactions, side=first.side, clip=first.clip,
                  device=first.V.device)
        out.set_parameters(float(np.mean([m.w0.numpy()[0] for m in models])),
                           np.mean([t[:, 0] for t in ths], axis=0),
                           np.concatenate([t[:, 1:] * scale for t in ths], axis=1))
        out.features = first.features
        if all(m.prior_mu is not None for m in models):
            # the fold-in prior of the scaled factors: means scaled by 1/sqrt(n),
            # precisions by n; the bias's averaged
            out.prior_mu = np.concatenate(
                [np.mean([m.prior_mu[:, :1] for m in models], axis=0)]
                + [m.prior_mu[:, 1:] * scale for m in models], axis=1)
            out.prior_lam = np.concatenate(
                [np.mean([m.prior_lam[:, :1] for m in models], axis=0)]
                + [m.prior_lam[:, 1:] * n for m in models], axis=1)
        out.alpha = float(np.mean([m.alpha for m in models]))
        out.info = {**first.info, "chains": n, "k": out.k,
                    "seeds": [m.info.get("seed") for m in models],
                    "fit_seconds": round(sum(m.info.get("fit_seconds", 0) for m in models), 2)}
        return out

    def _need_features(self) -> Features:
        if self.features is None:
            raise RuntimeError("this FactorizationMachine has no MovieLens feature index; "
                               "fit it with fit_movielens() or load a shipped model")
        return self.features

    def _movie_index(self, movie_id: Any) -> int:
        f = self._need_features()
        try:
            m = int(movie_id)
            if isinstance(movie_id, float) and m != movie_id:
                raise ValueError
        except (TypeError, ValueError):
            raise KeyError(f"unknown movie id {movie_id!r} (ids are integers "
                           f"{int(f.movie_ids[0])}..{int(f.movie_ids[-1])})") from None
        j = int(np.searchsorted(f.movie_ids, m))
        if j >= len(f.movie_ids) or f.movie_ids[j] != m:
            raise KeyError(f"unknown movie id {movie_id!r} (ids are integers "
                           f"{int(f.movie_ids[0])}..{int(f.movie_ids[-1])})")
        return j

    def _user_index(self, user_id: Any) -> int:
        f = self._need_features()
        j = int(np.searchsorted(f.user_ids, int(user_id)))
        if j >= len(f.user_ids) or f.user_ids[j] != int(user_id):
            raise KeyError(f"unknown user id {user_id!r} (training users are "
                           f"{int(f.user_ids[0])}..{int(f.user_ids[-1])}); pass a dict of "
                           "ratings for a new user instead")
        return j

    def _movie_side(self) -> np.ndarray:
        """(n_movies, k+1): each movie's summed [bias, factors] over its features."""
        if "movie_side" not in self._host:
            self._host["movie_side"] = np.asarray(self._need_features().X_movie @ self._theta())
        return self._host["movie_side"]

    def predict_ids(self, user_ids: Any, movie_ids: Any) -> np.ndarray:
        """Clipped predicted ratings for training users x known movies (vectorised)."""
        f = self._need_features()
        th = self._theta()
        user_ids, movie_ids = np.asarray(user_ids), np.asarray(movie_ids)
        uu = np.minimum(np.searchsorted(f.user_ids, user_ids), len(f.user_ids) - 1)
        mi = np.minimum(np.searchsorted(f.movie_ids, movie_ids), len(f.movie_ids) - 1)
        for ids, pos, known, what in ((user_ids, uu, f.user_ids, "user"),
                                      (movie_ids, mi, f.movie_ids, "movie")):
            bad = known[pos] != ids
            if bad.any():
                raise KeyError(f"unknown {what} id {ids[bad][0]!r}")
        Tu = np.asarray(f.X_user @ th)[uu]
        Tm = self._movie_side()[mi]
        p = float(self.w0.numpy()[0]) + Tu[:, 0] + Tm[:, 0] + (Tu[:, 1:] * Tm[:, 1:]).sum(1)
        return np.clip(p, 1.0, 5.0)

    def _new_user(self, ratings: dict[Any, Any]) -> tuple[np.ndarray, CSR, np.ndarray,
                                                           np.ndarray]:
        """Fold-in: the new user's total [bias, factors] given fixed movie factors.

        Features known immediately (the rated movies, SVD++-style) are summed; the user's
        own one-hot part is the ridge/Bayesian posterior mean under the user group's prior,
        a (k+1)-dimensional solve: no retraining."""
        f = self._need_features()
        if not isinstance(ratings, dict):
            raise TypeError(f"ratings must be a dict {{movie_id: stars}}, not "
                            f"{type(ratings).__name__}")
        if not ratings:
            raise ValueError("no ratings given: rate at least one movie (1..5 stars) to get "
                             "recommendations")
        mids = np.array([self._movie_index(m) for m in ratings])
        ys = np.array([_check_rating(m, r) for m, r in ratings.items()])
        th = self._theta()
        n = f.n
        gi = {g: i for i, g in enumerate(f.group_names)}
        cols = f.implicit_offset + np.unique(mids) if "rated" in gi else np.zeros(0, np.int64)
        x = CSR.from_coo(np.zeros(len(cols)), cols, np.full(len(cols), 1.0 / np.sqrt(
            max(len(cols), 1))), (1, n))
        fixed = np.asarray(x @ th)[0]
        Tm = self._movie_side()[mids]
        Z = np.concatenate([np.ones((len(mids), 1)), Tm[:, 1:]], axis=1)
        w0 = float(self.w0.numpy()[0])
        resid = ys - w0 - Tm[:, 0] - Z @ fixed
        g = gi["user"]
        K1 = self.k + 1
        lam = self.prior_lam[g] if self.prior_lam is not None else np.full(K1, 25.0)
        mu = self.prior_mu[g] if self.prior_mu is not None else np.zeros(K1)
        P = self.alpha * Z.T @ Z + np.diag(lam)
        own = np.linalg.solve(P, self.alpha * Z.T @ resid + lam * mu)
        return fixed + own, x, own, mids

    def recommend(self, ratings: dict[Any, Any], k: int = 10, min_ratings: int = 5
                  ) -> list[tuple[int, float]]:
        """Top-k (movie_id, predicted stars) for a new user from a few ratings, excluding
        the movies they rated and those with fewer than `min_ratings` training ratings
        (their scores rest on almost no data)."""
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k!r}")
        f = self._need_features()
        user, _, _, mids = self._new_user(ratings)
        Tm = self._movie_side()
        score = float(self.w0.numpy()[0]) + user[0] + Tm[:, 0] + Tm[:, 1:] @ user[1:]
        score[mids] = -np.inf
        if f.movie_counts is not None:
            score[f.movie_counts < min_ratings] = -np.inf
        top = np.argsort(-score, kind="stable")[:int(k)]
        top = top[np.isfinite(score[top])]
        return [(int(f.movie_ids[j]), float(np.clip(score[j], 1.0, 5.0))) for j in top]

    def explain(self, user: Any, movie_id: Any, top: int = 8) -> list[tuple[str, float]]:
        """Features that pushed the predicted rating of `movie_id` up or down, largest first.

        `user` is a training user id or a dict of ratings (a new user). A feature's share
        is its linear weight plus half of each pairwise interaction it takes part in, so the
        shares sum to prediction - global mean (w0). The implicit-feedback groups (the
        films a user rated, the users who rated the film: hundreds of small shares) are
        summed into one share each."""
        f = self._need_features()
        th = self._theta()
        j = self._movie_index(movie_id)
        xm = f.X_movie[j]
        names = list(f.names)
        summed = {"rated": "rated=(the films rated)", "rated_by": "rated_by=(who rated it)"}
        for g, gname in enumerate(f.group_names):
            if gname in summed:
                for c in np.flatnonzero(f.group == g):
                    names[c] = summed[gname]
        if isinstance(user, dict):
            _, xu, own, _ = self._new_user(user)
            extra = [("you (fold-in)", own)]
        else:
            xu = f.X_user[self._user_index(user)]
            extra = []
        su = np.asarray(xu @ th)[0] + sum(o for _, o in extra)
        sm = np.asarray(xm @ th)[0]
        out: dict[str, float] = {}
        for xrow, other in ((xu, sm), (xm, su)):
            for c, v in zip(xrow.indices, xrow.data):
                out[names[c]] = out.get(names[c], 0.0) + float(
                    v * th[c, 0] + 0.5 * v * th[c, 1:] @ other[1:])
        for name, o in extra:
            out[name] = float(o[0] + 0.5 * o[1:] @ sm[1:])
        items = sorted(out.items(), key=lambda t: -abs(t[1]))
        return items[:int(top)]

    def movie_factors(self) -> tuple[np.ndarray, np.ndarray]:
        """(movie ids, (n_movies, k) factor vectors): each movie's position in taste
        space, its features summed (what `similar` compares; a map of it shows genres)."""
        return self._need_features().movie_ids, self._movie_side()[:, 1:]

    def similar(self, movie_id: Any, k: int = 10) -> list[tuple[int, float]]:
        """The k movies whose factor vectors are closest in cosine (excluding itself)."""
        f = self._need_features()
        j = self._movie_index(movie_id)
        Q = self._movie_side()[:, 1:]
        Qn = Q / (np.linalg.norm(Q, axis=1, keepdims=True) + 1e-12)
        cos = Qn @ Qn[j]
        cos[j] = -np.inf
        top = np.argsort(-cos, kind="stable")[:int(k)]
        return [(int(f.movie_ids[t]), float(cos[t])) for t in top]

    # -- persistence (plain arrays; np.load(allow_pickle=False)) ------------------------
    def save(self, path: str | os.PathLike) -> None:
        arrays: dict[str, np.ndarray] = {
            "format": np.array(FORMAT), "interactions": np.array(self.interactions),
            "w0": self.w0.numpy().astype(np.float32), "w": self.w.numpy()[:, 0].astype(np.float32),
            "V": self.V.numpy().astype(np.float32), "alpha": np.array(self.alpha),
            "info": np.array(json.dumps(self.info)),
            "clip": np.array(self.clip if self.clip else (np.nan, np.nan), np.float64),
        }
        if self.side is not None:
            arrays["side"] = self.side
        if self.prior_mu is not None:
            arrays["prior_mu"] = self.prior_mu.astype(np.float32)
            arrays["prior_lam"] = self.prior_lam.astype(np.float32)
        f = self.features
        if f is not None:
            arrays.update({
                "feature_names": np.array(f.names), "group": f.group.astype(np.int16),
                "group_names": np.array(f.group_names), "group_onehot": f.group_onehot,
                "user_ids": f.user_ids.astype(np.int32), "movie_ids": f.movie_ids.astype(np.int32),
                "offsets": np.array([f.implicit_offset, f.movie_offset, f.genre_offset]),
            })
            if f.movie_counts is not None:
                arrays["movie_counts"] = f.movie_counts.astype(np.int32)
            for name, X in (("X_user", f.X_user), ("X_movie", f.X_movie)):
                X = as_csr(X)
                arrays[f"{name}_indptr"] = X.indptr.astype(np.int32)
                arrays[f"{name}_indices"] = X.indices.astype(np.int16 if f.n < 32768
                                                            else np.int32)
                arrays[f"{name}_data"] = X.data.astype(np.float32)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> FactorizationMachine:
        try:
            z = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise FileNotFoundError(f"no FM model at {path}; train one with "
                                    "`python build.py train fm`") from None
        except ValueError as exc:
            raise ValueError(f"{path} is not a readable .npz of plain arrays: {exc}") from None
        with z:
            if "format" not in z or str(z["format"]) != FORMAT:
                raise ValueError(f"{path} is not a {FORMAT} model file")
            V = z["V"].astype(np.float64)
            clip = tuple(float(c) for c in z["clip"])
            model = cls(V.shape[0], V.shape[1], interactions=str(z["interactions"]),
                        side=z["side"] if "side" in z else None,
                        clip=None if np.isnan(clip[0]) else clip, device=device)
            model.set_parameters(float(z["w0"][0]), z["w"], V)
            model.alpha = float(z["alpha"])
            model.info = json.loads(str(z["info"]))
            if "prior_mu" in z:
                model.prior_mu = z["prior_mu"].astype(np.float64)
                model.prior_lam = z["prior_lam"].astype(np.float64)
            if "feature_names" in z:
                n = V.shape[0]
                mats = {}
                for name in ("X_user", "X_movie"):
                    ip = z[f"{name}_indptr"]
                    mats[name] = CSR(z[f"{name}_data"].astype(np.float64),
                                     z[f"{name}_indices"].astype(np.int64),
                                     ip.astype(np.int64), (len(ip) - 1, n))
                off = z["offsets"]
                model.features = Features(
                    [str(s) for s in z["feature_names"]], z["group"].astype(np.int64),
                    [str(s) for s in z["group_names"]], z["group_onehot"].astype(bool),
                    z["side"].astype(np.int8), z["user_ids"].astype(np.int64),
                    z["movie_ids"].astype(np.int64), mats["X_user"], mats["X_movie"],
                    int(off[0]), int(off[1]), int(off[2]),
                    z["movie_counts"].astype(np.int64) if "movie_counts" in z else None)
        return model
