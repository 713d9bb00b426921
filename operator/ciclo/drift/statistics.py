"""Drift statistics over binned counts, pure: PSI, Kolmogorov-Smirnov, Jensen-Shannon.

Every statistic here works on counts in bins fixed by the baseline profile, so a
sliding window only adds and subtracts counts and a statistic costs O(bins),
however large the window.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import jensenshannon

EPSILON = 1e-4
"""Empty bins count as this fraction in PSI, so ln(0) never appears (the usual convention)."""


def frequencies(counts: np.ndarray) -> np.ndarray:
    """Counts along the last axis as fractions (rows of zeros stay zeros)."""
    total = counts.sum(axis=-1, keepdims=True)
    out: np.ndarray = np.divide(counts, total, out=np.zeros(counts.shape), where=total > 0)
    return out


def psi(reference: np.ndarray, actual: np.ndarray) -> float:
    """Population Stability Index, sum over bins of (a - r) * ln(a / r), on fractions.

    Bins empty on either side count as EPSILON. Conventional reading: under 0.1
    stable, 0.1 to 0.2 a moderate shift, over 0.2 a significant one."""
    r = np.maximum(np.asarray(reference, dtype=np.float64), EPSILON)
    a = np.maximum(np.asarray(actual, dtype=np.float64), EPSILON)
    return float(np.sum((a - r) * np.log(a / r)))


def js_distance(reference: np.ndarray, actual: np.ndarray) -> float:
    """Jensen-Shannon distance in base 2, so 0 (same) to 1 (disjoint)."""
    return float(jensenshannon(reference, actual, base=2))


def ks_bin_index(values: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Each value's KS bin against the reference's sorted distinct values `support`.

    Bin 2j+1 holds values equal to support[j]; bin 2j holds values strictly between
    support[j-1] and support[j] (bin 0 is below the smallest, bin 2k above the largest)."""
    pos = np.searchsorted(support, values, side="left")
    if not support.size:
        return 2 * pos
    # past the end (pos == k) the value is above support[k-1], so comparing with it is False
    equal = support.take(np.minimum(pos, support.size - 1)) == values
    out: np.ndarray = 2 * pos + equal
    return out


def ks_reference_cdf(support_cdf: np.ndarray) -> np.ndarray:
    """The reference ECDF at each of the 2k+1 KS bins (see ks_bin_index).

    At a value equal to support[j] it is support_cdf[j]; between support[j-1] and
    support[j] it is support_cdf[j-1] (0 below the smallest)."""
    k = support_cdf.size
    out = np.empty(2 * k + 1)
    out[1::2] = support_cdf
    out[0] = 0.0
    out[2::2] = support_cdf
    return out


def ks_from_counts(reference_cdf: np.ndarray, counts: np.ndarray) -> float:
    """The two-sample KS statistic sup |F_ref - F_window|, exactly as scipy's ks_2samp.

    Both ECDFs only change at sample points. Inside one gap between reference
    values F_ref is constant and F_window rises, so the largest difference there is
    at the gap's ends: the reference value itself, or the last window value before
    the next reference value. Those are exactly the cumulative counts at the KS
    bins, so counts per bin are enough and no window value needs keeping."""
    total = counts.sum()
    if total == 0:
        return float("nan")
    window_cdf = np.cumsum(counts) / total
    return float(np.max(np.abs(window_cdf - reference_cdf)))
