"""Retrain the iris classifier on scikit-learn's data with fresh rows appended, as a
training Job runs it (docs/training.md has the contract).

The operator sets CICLO_MODEL, CICLO_NAMESPACE, CICLO_VERSION, CICLO_RUN, CICLO_TRIGGER,
CICLO_PARENT_VERSION and CICLO_ARTIFACT_URI (the artifact store's prefix with the run's
name). The script writes the dataset, the model and its baseline profile under
CICLO_ARTIFACT_URI (on a pvc:// store, to CICLO_ARTIFACT_DIR, where the claim is mounted),
then registers the version with `ciclo register`, which takes every digest first and
records the lineage from those variables. Nothing is registered unless all of it was
written.

    FRESH_ROWS   rows of new data appended to iris (default 150)
    LABEL_NOISE  share of the fresh rows whose label is wrong (default 0): a worse model
    SEED         the fresh rows' seed (default: from the run's name)
"""

from __future__ import annotations

import csv
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import fsspec
import joblib
import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def fresh_data(rng: np.random.Generator, rows: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Iris with `rows` new rows: jittered copies of real ones, a share of labels flipped."""
    x, y = load_iris(return_X_y=True)
    pick = rng.integers(0, len(x), size=rows)
    new_x = x[pick] + rng.normal(0, 0.1, size=(rows, x.shape[1]))
    new_y = y[pick].copy()
    flip = rng.random(rows) < noise
    new_y[flip] = (new_y[flip] + 1) % 3
    return np.vstack([x, new_x]), np.concatenate([y, new_y])


def ciclo(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "ciclo.cli.main", *args], check=True)


def main() -> int:
    run = os.environ.get("CICLO_RUN", "local")
    target = os.environ.get("CICLO_ARTIFACT_URI", Path("runs", run).resolve().as_uri())
    seed = int(os.environ.get("SEED") or int(hashlib.sha256(run.encode()).hexdigest()[:8], 16))
    rows = int(os.environ.get("FRESH_ROWS", "150"))
    noise = float(os.environ.get("LABEL_NOISE", "0"))
    rng = np.random.default_rng(seed)
    x, y = fresh_data(rng, rows, noise)
    train_x, test_x, train_y, test_y = train_test_split(
        x, y, test_size=0.3, random_state=seed % 2**32, stratify=y
    )
    model = LogisticRegression(max_iter=500).fit(train_x, train_y)
    accuracy = float((model.predict(test_x) == test_y).mean())
    print(f"run {run}: {len(x)} rows ({rows} fresh), holdout accuracy {accuracy:.3f}")

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "train.csv"
        with data.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow([*FEATURES, "species"])
            writer.writerows([*row, int(label)] for row, label in zip(train_x, train_y, strict=True))
        joblib.dump(model, work / "model.joblib")
        ciclo(
            "profile", str(data), "--target", "species", "--model", str(work / "model.joblib"),
            "--format", "sklearn", "--out", str(work / "profile.json"),
        )
        # Everything to the artifact store first; registering reads it back for the digests.
        # A pvc:// store is a mounted directory: plain files there, registered as pvc:// URIs.
        fs, root = fsspec.core.url_to_fs(os.environ.get("CICLO_ARTIFACT_DIR") or target)
        fs.makedirs(root, exist_ok=True)
        for name in ("train.csv", "model.joblib", "profile.json"):
            fs.put_file(str(work / name), f"{root}/{name}")
    ciclo(
        "register", f"{target}/model.joblib", "--format", "sklearn",
        "--baseline", f"{target}/profile.json", "--dataset", f"{target}/train.csv",
        "--metric", f"accuracy={accuracy}",
        "--param", f"fresh_rows={rows}", "--param", f"label_noise={noise}",
        "--param", f"seed={seed}", "--param", "estimator=LogisticRegression(max_iter=500)",
        "--description", f"retrained by run {run} ({os.environ.get('CICLO_TRIGGER', 'by hand')})",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
