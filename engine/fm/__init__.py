"""Factorization machines (Rendle 2010): recommendations from sparse "who rated what" data.

`FactorizationMachine` is a second-order FM on the engine's Tensors (fit with SGD/Adam on
any device) with a MovieLens API (fit_movielens, recommend, explain, similar, save/load);
`fit_mcmc` is the Bayesian (Gibbs sampling) solver in NumPy that reaches ~0.89 RMSE.
MovieLens files are read by `engine.data.movielens`; `build_features` makes FM features.
`engine.fm.image` makes a damaged image FM data (which pixel, where its neighbours are,
what they show) for art restoration (`engine.inpaint`); `engine.fm.groups` completes
groups of similar patches by a low-rank factor model (the non-local part). Sparse matrices are
`engine.sparse.CSR` (NumPy only: the browser has no scipy).
"""

from .mcmc import MCMCResult, fit_mcmc
from .model import FactorizationMachine, fm_forward, padded_rows
from .movielens import Features, build_features

__all__ = ["FactorizationMachine", "padded_rows", "fm_forward", "fit_mcmc", "MCMCResult",
           "Features", "build_features"]
