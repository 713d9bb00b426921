"""Baseline profiles: what the training data looked like, as bins drift is measured in.

A profile is built once, offline (`ciclo profile`), and read by every serving pod.
Numeric features keep quantile bin edges with their reference frequencies (for
PSI) and the reference's sorted distinct values with their ECDF (for an exact
KS); categorical features keep their categories and frequencies, plus one bin for
values never seen in training.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ciclo.drift.cbpe import Calibration

BINS = 10
"""Quantile bins per numeric feature (deciles), the usual choice for PSI."""
SUPPORT = 5000
"""Reference values kept per numeric feature for KS; larger data is subsampled evenly by rank."""
PREDICTION = "prediction"


class ProfileError(Exception):
    """A profile could not be built or read; str() says why in one line."""


def value_key(value: Any) -> str:
    """One spelling per category or class: 1, 1.0, np.int64(1) and "1" are all "1"."""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return str(value)
    if isinstance(value, bool | np.bool_):
        return str(int(value))
    number = float(value)
    if math.isfinite(number) and number == int(number):
        return str(int(number))
    return repr(number)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NumericFeature(_Strict):
    name: str
    kind: Literal["numeric"] = "numeric"
    edges: list[float]
    """Interior bin edges, increasing; bin i holds edges[i-1] <= x < edges[i]."""
    reference: list[float]
    """Fraction of the training rows in each of the len(edges)+1 bins."""
    support: list[float]
    """Sorted distinct training values (up to SUPPORT of them), for KS."""
    support_cdf: list[float]
    """The training ECDF at each support value."""


class CategoricalFeature(_Strict):
    name: str
    kind: Literal["categorical"] = "categorical"
    categories: list[str]
    """Category keys (value_key) seen in training."""
    reference: list[float]
    """Fraction of training rows per category, then one last bin for unseen values."""


Feature = Annotated[NumericFeature | CategoricalFeature, Field(discriminator="kind")]


class Profile(_Strict):
    format: Literal["ciclo.dev/profile/v1"] = "ciclo.dev/profile/v1"
    rows: int
    features: list[Feature]
    prediction: Feature | None = None
    calibration: Calibration | None = None
    """The classifier's probability calibration on the reference data, for CBPE
    (ciclo.drift.cbpe); set when the profile was built with the model and the labels."""

    def save(self, path: Path) -> None:
        path.write_text(self.model_dump_json(indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> Profile:
        try:
            return cls.model_validate_json(path.read_bytes())
        except OSError as e:
            raise ProfileError(f"cannot read profile {path}: {e.strerror}") from None
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ProfileError(f"{path} is not a ciclo profile: {where}: {first['msg']}") from None


def numeric_edges(values: np.ndarray, bins: int = BINS) -> np.ndarray:
    inner = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(inner)


def numeric_bins(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.searchsorted(edges, values, side="right")


def profile_numeric(name: str, values: np.ndarray, bins: int = BINS) -> NumericFeature:
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    if x.size == 0:
        raise ProfileError(f"feature {name} has no values")
    edges = numeric_edges(x, bins)
    counts = np.bincount(numeric_bins(x, edges), minlength=edges.size + 1)
    ranked = np.sort(x)
    if ranked.size > SUPPORT:
        ranked = ranked[np.linspace(0, ranked.size - 1, SUPPORT).round().astype(int)]
    support, repeats = np.unique(ranked, return_counts=True)
    return NumericFeature(
        name=name,
        edges=edges.tolist(),
        reference=(counts / x.size).tolist(),
        support=support.tolist(),
        support_cdf=(np.cumsum(repeats) / ranked.size).tolist(),
    )


def profile_categorical(name: str, values: Sequence[Any] | np.ndarray) -> CategoricalFeature:
    keys = [value_key(v) for v in values]
    if not keys:
        raise ProfileError(f"feature {name} has no values")
    categories, counts = np.unique(np.asarray(keys, dtype=object), return_counts=True)
    return CategoricalFeature(
        name=name,
        categories=[str(c) for c in categories],
        reference=[*(counts / len(keys)).tolist(), 0.0],
    )


def build_profile(
    columns: Mapping[str, np.ndarray],
    categorical: set[str] | frozenset[str] = frozenset(),
    predictions: np.ndarray | None = None,
    predictions_categorical: bool = True,
) -> Profile:
    """A profile of `columns` (name -> values, in the model's feature order).

    Columns whose values are not numbers are categorical, and so are the ones named
    in `categorical` (integer-coded categories)."""
    unknown = categorical - set(columns)
    if unknown:
        raise ProfileError(f"no such column: {', '.join(sorted(unknown))}")
    rows = {len(v) for v in columns.values()}
    if len(rows) > 1:
        raise ProfileError(f"columns have different lengths: {sorted(rows)}")
    features: list[NumericFeature | CategoricalFeature] = []
    for name, values in columns.items():
        numeric = np.asarray(values).dtype.kind in "iuf"
        if numeric and name not in categorical:
            features.append(profile_numeric(name, values))
        else:
            features.append(profile_categorical(name, values))
    prediction: NumericFeature | CategoricalFeature | None = None
    if predictions is not None:
        prediction = (
            profile_categorical(PREDICTION, predictions)
            if predictions_categorical
            else profile_numeric(PREDICTION, predictions)
        )
    return Profile(rows=rows.pop() if rows else 0, features=features, prediction=prediction)
