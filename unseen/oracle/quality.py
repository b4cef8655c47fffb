"""Model quality figures the demo reports for encrypted and plaintext scores alike."""

from __future__ import annotations

import numpy as np

__all__ = ["auc", "precision_recall"]


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
