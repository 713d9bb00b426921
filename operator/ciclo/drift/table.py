"""Training data in: CSV (standard library) or Parquet (pyarrow, the `parquet` extra).

Columns come back in file order as numpy arrays: float64 when every value is a
number (an empty cell is NaN), otherwise strings.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ciclo.drift.profile import ProfileError


def _column(values: list[str]) -> np.ndarray:
    try:
        return np.asarray([float(v) if v.strip() else np.nan for v in values], dtype=np.float64)
    except ValueError:
        return np.asarray(values, dtype=object)


def read_csv(path: Path) -> dict[str, np.ndarray]:
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise ProfileError(f"{path} is empty: a header row of column names is needed")
        rows = list(reader)
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise ProfileError(
                f"{path}:{number}: {len(row)} values, the header has {len(header)} columns"
            )
    return {name: _column([row[i] for row in rows]) for i, name in enumerate(header)}


def read_parquet(path: Path) -> dict[str, np.ndarray]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ProfileError("Parquet needs pyarrow: pip install 'ciclo[parquet]'") from None
    table = pq.read_table(path)
    out: dict[str, np.ndarray] = {}
    for name in table.column_names:
        values = table.column(name).to_numpy(zero_copy_only=False)
        out[name] = values if values.dtype.kind in "iufb" else values.astype(object)
    return out


def read_table(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        raise ProfileError(f"{path}: no such file")
    if path.suffix.lower() in (".parquet", ".pq"):
        return read_parquet(path)
    return read_csv(path)
