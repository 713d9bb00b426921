"""CBPE's error against realised quality under covariate shift, next to NannyML's.

    .venv/bin/python benchmarks/cbpe.py [--nannyml]

A three-class problem whose P(label | x) never changes (no concept drift) while x's
distribution moves by `shift` standard deviations; a logistic regression that sees two
of the three inputs. The model is trained on one sample, calibrated on a reference
sample (as `ciclo profile --target` does), and each analysis sample of 5,000 rows is
estimated by ciclo.drift.cbpe and, with --nannyml, by NannyML's CBPE, run in a
virtualenv of its own under $CICLO_CACHE/bench (made by benchmarks/venv.sh the first
time: it cannot share the project's, see docs/cbpe.md). Prints a Markdown table:
realised accuracy and macro F1 (from the labels), each estimate, and its error.
tests/unit/test_cbpe_nannyml.py runs the same comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from ciclo.drift import cbpe

SHIFTS = (0.0, 0.5, 1.0, 1.5, 2.0)
ROWS = 5000
HERE = Path(__file__).resolve().parent
# pandas 3 breaks NannyML 0.13.1, which also imports statsmodels without declaring it.
NANNYML_PINS = ("nannyml==0.13.1", "pandas==2.3.3", "statsmodels==0.15.0")

NANNYML = """
import json, sys
import numpy as np, pandas as pd
import nannyml as nml

data = np.load(sys.argv[1])
def frame(p, pred, y):
    df = pd.DataFrame({f"p{k}": p[:, k] for k in range(p.shape[1])})
    df["y_pred"] = pred.astype(str); df["y_true"] = y.astype(str)
    return df
ref = frame(data["ref_p"], data["ref_pred"], data["ref_y"])
est = nml.CBPE(
    y_pred_proba={str(k): f"p{k}" for k in range(data["ref_p"].shape[1])},
    y_pred="y_pred", y_true="y_true", problem_type="classification_multiclass",
    metrics=["accuracy", "f1"], chunk_number=1,
)
est.fit(ref)
out = []
for i in range(int(data["n"])):
    df = frame(data[f"p{i}"], data[f"pred{i}"], data[f"y{i}"]).drop(columns=["y_true"])
    res = est.estimate(df).filter(period="analysis").to_df()
    out.append({m: float(res[(m, "value")].iloc[0]) for m in ("accuracy", "f1")})
print(json.dumps({"version": nml.__version__, "estimates": out}))
"""


def sample(n: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(loc=[shift, -shift / 2, 0.0], scale=1.0, size=(n, 3))
    logits = np.column_stack([1.5 * x[:, 0], 1.2 * x[:, 1] - 0.5, 0.8 * x[:, 2] + 0.3 * x[:, 0]])
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    u = rng.uniform(size=(n, 1))
    y = (u > np.cumsum(p, axis=1)).sum(axis=1)
    return x, y


def nannyml_python() -> str:
    """NannyML's virtualenv, made the first time and reused while its pins match."""
    # the project's own Python version unless PYTHON says otherwise: it is there on any
    # machine that runs the tests, and NannyML 0.13.1 installs on it
    env = {**os.environ, "PYTHON": os.environ.get("PYTHON", sys.executable)}
    done = subprocess.run(
        ["bash", str(HERE / "venv.sh"), "nannyml", *NANNYML_PINS],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def overconfident(p: np.ndarray, factor: float) -> np.ndarray:
    """The probabilities with their logits multiplied by `factor`: the same predicted
    class, but miscalibrated when factor != 1, so calibration has something to do."""
    if factor == 1:
        return p
    z = np.log(np.clip(p, 1e-12, None)) * factor
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(z / z.sum(axis=1, keepdims=True))


def compare(
    shifts: Sequence[float], nannyml: str | None, rows: int = ROWS, factor: float = 1.0
) -> tuple[str | None, list[dict[str, Any]]]:
    """Per shift: realised accuracy and macro F1, ciclo's estimates and, given a Python
    with nannyml, NannyML's; and NannyML's version. `factor`: see overconfident."""
    x_train, y_train = sample(rows, 0.0, 1)
    model = LogisticRegression(max_iter=500).fit(x_train[:, :2], y_train)
    x_ref, y_ref = sample(rows, 0.0, 2)
    ref_p = overconfident(model.predict_proba(x_ref[:, :2]), factor)
    cal = cbpe.fit(ref_p, [str(v) for v in y_ref], ["0", "1", "2"])

    arrays: dict[str, np.ndarray] = {
        "ref_p": ref_p,
        "ref_pred": ref_p.argmax(axis=1),
        "ref_y": y_ref,
        "n": np.array(len(shifts)),
    }
    found: list[dict[str, Any]] = []
    for i, shift in enumerate(shifts):
        x, y = sample(rows, shift, 100 + i)
        p = overconfident(model.predict_proba(x[:, :2]), factor)
        predicted = p.argmax(axis=1)
        arrays |= {f"p{i}": p, f"pred{i}": predicted, f"y{i}": y}
        accuracy, f1 = cbpe.estimate(cal, p)
        found.append(
            {
                "shift": shift,
                "accuracy": accuracy_score(y, predicted),
                "f1": f1_score(y, predicted, average="macro"),
                "ciclo": {"accuracy": accuracy, "f1": f1},
                "confidence": float(p.max(axis=1).mean()),  # accuracy, were p calibrated
            }
        )
    if nannyml is None:
        return None, found
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        np.savez(path, **arrays)  # type: ignore[arg-type]
        out = subprocess.run([nannyml, "-c", NANNYML, str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"nannyml failed:\n{out.stderr}")
    theirs = json.loads(out.stdout.strip().splitlines()[-1])
    for row, estimate in zip(found, theirs["estimates"], strict=True):
        row["nannyml"] = estimate
    return str(theirs["version"]), found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--nannyml", action="store_true", help="compare with NannyML (its venv is made once)"
    )
    args = parser.parse_args()
    version, rows = compare(SHIFTS, nannyml_python() if args.nannyml else None)

    head = "| shift (sd) | realised accuracy | ciclo | error |"
    line = "|---|---|---|---|"
    if version:
        head += f" NannyML {version} | error |"
        line += "---|---|"
    for metric in ("accuracy", "f1"):
        print(f"\n{metric} ({ROWS} rows each; F1 macro-averaged)\n")
        print(head.replace("accuracy", metric))
        print(line)
        for row in rows:
            real, ours = row[metric], row["ciclo"][metric]
            cells = [f"{row['shift']:.1f}", f"{real:.4f}", f"{ours:.4f}", f"{ours - real:+.4f}"]
            if version:
                theirs = row["nannyml"][metric]
                cells += [f"{theirs:.4f}", f"{theirs - real:+.4f}"]
            print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
