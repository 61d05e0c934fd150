"""Logistic regression, cross-validation and ROC AUC in numpy alone.

Small and exact rather than general: an L2-regularised logistic regression fitted
by Newton's method on standardised features, k-fold cross-validated out-of-fold
scores (the regularisation chosen by nested cross-validation), and the ROC AUC as
the Mann-Whitney statistic (ties count a half).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["auc", "cross_validated_auc", "fit", "predict"]

Array = npt.NDArray[np.float64]


def fit(x: Array, y: Array, l2: float, iterations: int = 10) -> tuple[Array, Array, Array]:
    """``(weights, mean, scale)`` of a logistic regression of ``y`` (0/1) on ``x``.

    Features are standardised with the training mean and scale; the intercept is
    not penalised.
    """
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z = np.hstack([np.ones((x.shape[0], 1)), (x - mean) / scale])
    w = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], l2)
    penalty[0] = 0.0
    for _ in range(iterations):
        p = _sigmoid(z @ w)
        gradient = z.T @ (p - y) + penalty * w
        hessian = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    return w, mean, scale


def predict(model: tuple[Array, Array, Array], x: Array) -> Array:
    """The fitted model's probability that each row of ``x`` is a 1."""
    w, mean, scale = model
    return _sigmoid(w[0] + ((x - mean) / scale) @ w[1:])


def auc(y: Array, score: Array) -> float:
    """ROC AUC: the chance a random 1 scores above a random 0 (ties count a half)."""
    positives = y == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(score)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def cross_validated_auc(
    x: Array, y: Array, l2: Sequence[float], folds: int = 5, seed: int = 0
) -> float:
    """The AUC of out-of-fold predictions over ``folds`` shuffled, stratified folds.

    Within each training part the regularisation is chosen among ``l2`` by an inner
    2-fold cross-validation, as a miner tuning its classifier on what it has seen
    would; the held-out fold never takes part in that choice, so trying several
    strengths does not flatter the figure.
    """
    rng = np.random.default_rng(seed)
    fold_of = _folds(y, folds, rng)
    scores = np.empty(len(y))
    for fold in range(folds):
        test = fold_of == fold
        train_x, train_y = x[~test], y[~test]
        best = max(l2, key=lambda strength: _inner_auc(train_x, train_y, strength, rng))
        scores[test] = predict(fit(train_x, train_y, best), x[test])
    return auc(y, scores)


def _inner_auc(x: Array, y: Array, l2: float, rng: np.random.Generator, folds: int = 2) -> float:
    fold_of = _folds(y, folds, rng)
    scores = np.empty(len(y))
    for fold in range(folds):
        test = fold_of == fold
        scores[test] = predict(fit(x[~test], y[~test], l2), x[test])
    return auc(y, scores)


def _folds(y: Array, folds: int, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """A stratified assignment of rows to ``folds`` folds."""
    fold_of = np.empty(len(y), dtype=np.int64)
    for label in (0, 1):
        members = rng.permutation(np.flatnonzero(y == label))
        fold_of[members] = np.arange(len(members)) % folds
    return fold_of


def _sigmoid(v: Array) -> Any:
    return 1.0 / (1.0 + np.exp(-np.clip(v, -30, 30)))


def _average_ranks(values: Array) -> Array:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    sorted_values = values[order]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and sorted_values[j + 1] == sorted_values[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks
