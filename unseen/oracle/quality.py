"""Model quality figures the demo reports for encrypted and plaintext scores alike."""

from __future__ import annotations

import numpy as np

__all__ = ["auc", "logistic_regression", "precision_recall"]


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if not positives or not negatives:
        raise ValueError("AUC needs both positive and negative labels")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    # Average ranks over ties: runs of equal scores share the mean of their ranks.
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)] - 1
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = np.repeat((starts + ends) / 2 + 1, ends - starts + 1)
    u = ranks[labels].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))


def precision_recall(
    scores: np.ndarray, labels: np.ndarray, threshold: float
) -> tuple[float, float]:
    """Precision and recall of flagging ``scores >= threshold``."""
    flagged = np.asarray(scores) >= threshold
    labels = np.asarray(labels, dtype=bool)
    true_positive = int((flagged & labels).sum())
    precision = true_positive / int(flagged.sum()) if flagged.any() else 0.0
    recall = true_positive / int(labels.sum()) if labels.any() else 0.0
    return precision, recall


def logistic_regression(
    x: np.ndarray, y: np.ndarray, iterations: int = 50, ridge: float = 1e-8
) -> tuple[np.ndarray, float]:
    """Plaintext logistic regression with the exact sigmoid: (weights, intercept).

    Newton's method (iteratively reweighted least squares), which converges to
    the maximum-likelihood fit in a few steps whatever the features' scaling —
    the reference the jointly trained model's AUC is compared with. ``ridge``
    only keeps the Hessian invertible for constant or collinear columns.
    """
    design = np.hstack([np.asarray(x, dtype=np.float64), np.ones((len(y), 1))])
    beta = np.zeros(design.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ beta, -30, 30)))
        hessian = (design * (p * (1 - p))[:, None]).T @ design
        hessian += ridge * np.eye(len(beta))
        step = np.linalg.solve(hessian, design.T @ (p - np.asarray(y, dtype=np.float64)))
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    return beta[:-1], float(beta[-1])
