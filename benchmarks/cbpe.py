"""CBPE's error against realised quality under covariate shift, next to NannyML's.

    .venv/bin/python benchmarks/cbpe.py [--nannyml PYTHON]

A three-class problem whose P(label | x) never changes (no concept drift) while x's
distribution moves by `shift` standard deviations; a logistic regression that sees two
of the three inputs. The model is trained on one sample, calibrated on a reference
sample (as `ciclo profile --target` does), and each analysis sample of 5,000 rows is
estimated by ciclo.drift.cbpe and, with --nannyml, by NannyML's CBPE (run by that
Python, a virtualenv with nannyml: it cannot share the project's, see docs/cbpe.md).
Prints a Markdown table: realised accuracy and macro F1 (from the labels), each
estimate, and its error.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from ciclo.drift import cbpe

SHIFTS = (0.0, 0.5, 1.0, 1.5, 2.0)
ROWS = 5000

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nannyml", help="a Python with nannyml installed")
    args = parser.parse_args()

    x_train, y_train = sample(ROWS, 0.0, 1)
    model = LogisticRegression(max_iter=500).fit(x_train[:, :2], y_train)
    x_ref, y_ref = sample(ROWS, 0.0, 2)
    ref_p = model.predict_proba(x_ref[:, :2])
    cal = cbpe.fit(ref_p, [str(v) for v in y_ref], ["0", "1", "2"])

    arrays: dict[str, np.ndarray] = {
        "ref_p": ref_p,
        "ref_pred": ref_p.argmax(axis=1),
        "ref_y": y_ref,
        "n": np.array(len(SHIFTS)),
    }
    rows = []
    for i, shift in enumerate(SHIFTS):
        x, y = sample(ROWS, shift, 100 + i)
        p = model.predict_proba(x[:, :2])
        predicted = p.argmax(axis=1)
        arrays |= {f"p{i}": p, f"pred{i}": predicted, f"y{i}": y}
        accuracy, f1 = cbpe.estimate(cal, p)
        rows.append(
            {
                "shift": shift,
                "accuracy": accuracy_score(y, predicted),
                "f1": f1_score(y, predicted, average="macro"),
                "ciclo": {"accuracy": accuracy, "f1": f1},
            }
        )

    version = None
    if args.nannyml:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "data.npz"
            np.savez(path, **arrays)  # type: ignore[arg-type]
            out = subprocess.run(
                [args.nannyml, "-c", NANNYML, str(path)],
                capture_output=True,
                text=True,
            )
            if out.returncode != 0:
                raise SystemExit(f"nannyml failed:\n{out.stderr}")
        found = json.loads(out.stdout.strip().splitlines()[-1])
        version = found["version"]
        for row, theirs in zip(rows, found["estimates"], strict=True):
            row["nannyml"] = theirs

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
