"""Confidence-based performance estimation (CBPE): accuracy and F1 before labels arrive.

After NannyML's CBPE. A classifier's probabilities, once calibrated (a predicted 0.8
is right 80% of the time), give each prediction's chance of being right; summed, they
give the expected confusion matrix, and from it the expected accuracy and F1 of a
window of predictions that have no labels yet.

Calibration is fitted once, on the version's reference data with its labels, when
`ciclo profile` builds the profile (`--target` and `--model`): one isotonic regression
per class of 1[label == class] on that class's predicted probability (one for the
positive class of a binary model), stored in the profile as breakpoints. Serving pods
apply it to live probabilities by linear interpolation between them, and renormalise
each row to sum to one (multiclass).

The assumption: no concept drift. P(label | inputs) is what it was on the reference
data, so the calibration still holds under covariate shift (the inputs' distribution
moves); when the relation between inputs and labels changes, the estimate is wrong
and only labels tell. Labels stay the ground truth: `accuracy` and `f1` from feedback
judge the model once they come.

Estimated F1 is macro-averaged over classes, as the runtime's `f1` from labels is
(scikit-learn's average="macro"), so that a rule compares like with like.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

MAX_POINTS = 512
"""Breakpoints kept per class: a larger fit is thinned evenly (the profile stays small)."""


class Calibration(BaseModel):
    """Per-class isotonic calibration maps: calibrated = interp(p, x[k], y[k])."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    classes: list[str]
    """Class keys (value_key), in the order of the model's predict_proba columns."""
    x: list[list[float]] = Field(min_length=1)
    """Increasing predicted probabilities: one list per class, one list for a binary model
    (its positive class, the second)."""
    y: list[list[float]] = Field(min_length=1)
    """The calibrated probability at each of x."""
    rows: int
    """Reference rows the calibration was fitted on."""


def isotonic(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The non-decreasing least-squares fit of y on x (pool adjacent violators), as
    breakpoints (distinct x, fitted value) where the fit changes."""
    order = np.argsort(x, kind="mergesort")
    xs, ys = x[order].astype(np.float64), y[order].astype(np.float64)
    ux, start, counts = np.unique(xs, return_index=True, return_counts=True)
    means = np.add.reduceat(ys, start) / counts
    # pool adjacent violators over the distinct x, weighted by their counts
    values: list[float] = []
    weights: list[float] = []
    sizes: list[int] = []
    for m, w in zip(means.tolist(), counts.astype(np.float64).tolist(), strict=True):
        values.append(m)
        weights.append(w)
        sizes.append(1)
        while len(values) > 1 and values[-2] > values[-1]:
            w2 = weights[-2] + weights[-1]
            v2 = (values[-2] * weights[-2] + values[-1] * weights[-1]) / w2
            n2 = sizes[-2] + sizes[-1]
            del values[-1], weights[-1], sizes[-1]
            values[-1], weights[-1], sizes[-1] = v2, w2, n2
    fitted = np.repeat(values, sizes)
    # keep each block's first and last point: linear interpolation between them is the fit
    keep = np.ones(ux.size, dtype=bool)
    if ux.size > 2:
        same_before = fitted[1:-1] == fitted[:-2]
        same_after = fitted[1:-1] == fitted[2:]
        keep[1:-1] = ~(same_before & same_after)
    return ux[keep], fitted[keep]


def _thin(x: np.ndarray, y: np.ndarray) -> tuple[list[float], list[float]]:
    if x.size > MAX_POINTS:
        pick = np.unique(np.linspace(0, x.size - 1, MAX_POINTS).round().astype(int))
        x, y = x[pick], y[pick]
    return x.tolist(), y.tolist()


def fit(proba: np.ndarray, labels: Sequence[str], classes: Sequence[str]) -> Calibration:
    """Calibration of `proba` (rows x classes, the model's column order) against the
    reference labels (class keys)."""
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != len(classes) or p.shape[1] < 2:
        raise ValueError(
            f"probabilities of shape {p.shape} do not match {len(classes)} classes (at least 2)"
        )
    truth = np.asarray(labels, dtype=object)
    if truth.size != p.shape[0]:
        raise ValueError(f"{truth.size} labels for {p.shape[0]} rows")
    unknown = set(truth.tolist()) - set(classes)
    if unknown:
        raise ValueError(f"labels that are not classes of the model: {sorted(unknown)[:5]}")
    columns = [1] if p.shape[1] == 2 else list(range(p.shape[1]))
    xs, ys = [], []
    for k in columns:
        bx, by = isotonic(p[:, k], (truth == classes[k]).astype(np.float64))
        tx, ty = _thin(bx, by)
        xs.append(tx)
        ys.append(ty)
    return Calibration(classes=list(classes), x=xs, y=ys, rows=int(p.shape[0]))


def calibrated(cal: Calibration, proba: np.ndarray) -> np.ndarray:
    """Calibrated probabilities, rows x classes."""
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim == 1:  # a binary model's P(positive class)
        p = np.column_stack([1 - p, p])
    if len(cal.x) == 1:
        positive = np.interp(p[:, 1], cal.x[0], cal.y[0])
        return np.column_stack([1 - positive, positive])
    c = np.column_stack([np.interp(p[:, k], cal.x[k], cal.y[k]) for k in range(p.shape[1])])
    total = c.sum(axis=1, keepdims=True)
    uniform = np.full_like(c, 1.0 / c.shape[1])
    return np.where(total > 0, c / np.where(total > 0, total, 1.0), uniform)


def estimate(cal: Calibration, proba: np.ndarray) -> tuple[float, float]:
    """Expected accuracy and macro F1 of predictions (each row's most probable class)
    whose probabilities are `proba`."""
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim == 1:
        p = np.column_stack([1 - p, p])
    if p.shape[0] == 0:
        raise ValueError("no predictions to estimate from")
    c = calibrated(cal, p)
    predicted = np.argmax(p, axis=1)
    rows = np.arange(p.shape[0])
    accuracy = float(c[rows, predicted].mean())
    one_hot = np.zeros_like(c)
    one_hot[rows, predicted] = 1.0
    tp = (c * one_hot).sum(axis=0)
    fp = ((1 - c) * one_hot).sum(axis=0)
    fn = (c * (1 - one_hot)).sum(axis=0)
    denominator = 2 * tp + fp + fn
    f1 = np.where(denominator > 0, 2 * tp / np.where(denominator > 0, denominator, 1.0), 0.0)
    return accuracy, float(f1.mean())
