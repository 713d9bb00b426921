"""`ciclo profile`: the training data's profile that drift (and CBPE) are measured against."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def cmd_profile(args: argparse.Namespace) -> int:
    import numpy as np

    from ciclo.drift.profile import ProfileError, build_profile
    from ciclo.drift.table import read_table
    from ciclo.serving.loaders import LoaderError, load
    from ciclo.serving.runtime import is_classifier

    try:
        table = read_table(Path(args.data))
        left_out = {c for c in [args.target, *args.drop] if c}
        missing = left_out - set(table)
        if missing:
            raise ProfileError(f"no such column: {', '.join(sorted(missing))}")
        columns = {k: v for k, v in table.items() if k not in left_out}
        predictions, categorical, calibration = None, True, None
        if args.model:
            if not args.format:
                raise ProfileError("--model needs --format")
            predictor = load(Path(args.model), args.format)
            matrix = np.column_stack([v.astype(np.float64) for v in columns.values()])
            predictions = np.asarray(predictor.predict(matrix))
            categorical = is_classifier(predictor)
            if categorical and args.target:
                calibration = calibrate(predictor, matrix, table[args.target])
        profile = build_profile(columns, set(args.categorical), predictions, categorical)
        if calibration is not None:
            profile = profile.model_copy(update={"calibration": calibration})
    except (ProfileError, LoaderError, ValueError) as e:
        print(f"ciclo profile: {e}", file=sys.stderr)
        return 1
    profile.save(Path(args.out))
    kinds = [f.kind for f in profile.features]
    print(
        f"ciclo profile: {profile.rows} rows, {kinds.count('numeric')} numeric and "
        f"{kinds.count('categorical')} categorical features"
        + (", and the predictions" if profile.prediction else "")
        + (
            f"; CBPE calibrated on {len(profile.calibration.classes)} classes"
            if profile.calibration
            else ""
        )
        + f" -> {args.out}"
    )
    return 0


def calibrate(predictor: Any, matrix: Any, target: Any) -> Any:
    """CBPE's calibration of a classifier on the reference data and its labels."""
    import numpy as np

    from ciclo.drift import cbpe
    from ciclo.drift.profile import ProfileError, value_key
    from ciclo.serving.loaders import model_classes

    classes = model_classes(predictor)
    proba = predictor.predict_proba(matrix)
    if classes is None or proba is None:
        print(
            "ciclo profile: no CBPE calibration: the model does not say its classes and "
            "probabilities",
            file=sys.stderr,
        )
        return None
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim == 1:
        proba = np.column_stack([1 - proba, proba])
    try:
        return cbpe.fit(proba, [value_key(v) for v in np.asarray(target).tolist()], classes)
    except ValueError as e:
        raise ProfileError(f"CBPE calibration: {e}") from None


def add_parser(sub: Any) -> None:
    profile = sub.add_parser("profile", help="build a baseline profile from training data")
    profile.add_argument("data", help="training data: CSV with a header row, or Parquet")
    profile.add_argument("--out", required=True, help="where to write profile.json")
    profile.add_argument(
        "--target",
        help="the label column: left out of the features; with --model, a classifier's "
        "probabilities are calibrated against it for CBPE (docs/cbpe.md)",
    )
    profile.add_argument("--drop", action="append", default=[], help="another column to leave out")
    profile.add_argument(
        "--categorical", action="append", default=[], help="an integer-coded categorical column"
    )
    profile.add_argument(
        "--model", help="a model file: its predictions on DATA become the baseline"
    )
    profile.add_argument("--format", choices=["sklearn", "xgboost", "lightgbm", "onnx"])
    profile.set_defaults(func=cmd_profile)
