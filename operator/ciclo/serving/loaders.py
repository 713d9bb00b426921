"""Model loaders: scikit-learn, XGBoost, LightGBM and ONNX behind one small interface.

Each library is imported only when its format is loaded, so the runtime needs
only the extras for the formats it serves; a missing one is named in the error.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from ciclo.drift.profile import value_key

# format -> (module to import, extra that installs it)
EXTRAS = {
    "sklearn": ("joblib", "sklearn"),
    "xgboost": ("xgboost", "xgboost"),
    "lightgbm": ("lightgbm", "lightgbm"),
    "onnx": ("onnxruntime", "onnx"),
}


class LoaderError(Exception):
    """The model could not be loaded; str() says why in one line."""


class Predictor(Protocol):
    n_features: int | None
    """Input columns the model expects, when the model says."""

    def predict(self, x: np.ndarray) -> np.ndarray: ...

    def predict_proba(self, x: np.ndarray) -> np.ndarray | None:
        """Class probabilities (rows, classes), or None when the model has none."""
        ...


def _require(fmt: str) -> ModuleType:
    module, extra = EXTRAS[fmt]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise LoaderError(f"format {fmt} needs {module}: pip install 'ciclo[{extra}]'") from None


@dataclass
class SklearnPredictor:
    model: Any
    n_features: int | None

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict(x))

    def predict_proba(self, x: np.ndarray) -> np.ndarray | None:
        if not hasattr(self.model, "predict_proba"):
            return None
        return np.asarray(self.model.predict_proba(x))


@dataclass
class BoosterPredictor:
    """XGBoost and LightGBM boosters: raw outputs read according to the objective."""

    raw: Any  # x -> the booster's own prediction
    kind: str  # "multiclass" (rows, k) probabilities, "binary" P(class 1), or "regression"
    n_features: int | None

    def predict(self, x: np.ndarray) -> np.ndarray:
        out = np.asarray(self.raw(x))
        if self.kind == "multiclass":
            return np.asarray(out.argmax(axis=1))
        if self.kind == "binary":
            return (out > 0.5).astype(np.int64)
        return out

    def predict_proba(self, x: np.ndarray) -> np.ndarray | None:
        out = np.asarray(self.raw(x))
        if self.kind == "multiclass":
            return out
        if self.kind == "binary":
            return np.column_stack([1 - out, out])
        return None


@dataclass
class OnnxPredictor:
    session: Any
    input_name: str
    dtype: type[np.floating[Any]]
    n_features: int | None

    def _run(self, x: np.ndarray) -> list[Any]:
        return list(self.session.run(None, {self.input_name: np.asarray(x, dtype=self.dtype)}))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._run(x)[0])

    def predict_proba(self, x: np.ndarray) -> np.ndarray | None:
        outputs = self._run(x)
        if len(outputs) < 2:
            return None
        proba = outputs[1]
        if isinstance(proba, list):  # skl2onnx's ZipMap: one {class: p} per row
            keys = sorted(proba[0])
            return np.array([[row[k] for k in keys] for row in proba])
        return np.asarray(proba)


def _xgboost(path: Path) -> Predictor:
    xgb = _require("xgboost")
    booster = xgb.Booster()
    booster.load_model(str(path))
    objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    kind = (
        "multiclass"
        if objective == "multi:softprob"
        else "binary"
        if objective == "binary:logistic"
        else "regression"
    )
    return BoosterPredictor(lambda x: booster.inplace_predict(x), kind, int(booster.num_features()))


def _lightgbm(path: Path) -> Predictor:
    lgb = _require("lightgbm")
    booster = lgb.Booster(model_file=str(path))
    objective = str(booster.dump_model().get("objective", "")).split()[0]
    kind = (
        "multiclass"
        if objective in ("multiclass", "multiclassova")
        else "binary"
        if objective in ("binary", "cross_entropy")
        else "regression"
    )
    return BoosterPredictor(lambda x: booster.predict(x), kind, int(booster.num_feature()))


def _onnx(path: Path) -> Predictor:
    ort = _require("onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    first = session.get_inputs()[0]
    dtype = np.float64 if first.type == "tensor(double)" else np.float32
    width = first.shape[1] if len(first.shape) > 1 and isinstance(first.shape[1], int) else None
    return OnnxPredictor(session, first.name, dtype, width)


def _sklearn(path: Path) -> Predictor:
    joblib = _require("sklearn")
    model = joblib.load(path)  # joblib reads plain pickles too
    width = getattr(model, "n_features_in_", None)
    return SklearnPredictor(model, int(width) if width is not None else None)


def model_classes(predictor: Predictor) -> list[str] | None:
    """The classes a classifier predicts, as value_key spells them, when the model says:
    scikit-learn's `classes_`, a booster's class indices; None for the rest (ONNX)."""
    if isinstance(predictor, SklearnPredictor):
        classes = getattr(predictor.model, "classes_", None)
        if classes is None or np.ndim(classes) != 1:  # none, or one set per output
            return None
        return [value_key(c) for c in np.asarray(classes).tolist()]
    if isinstance(predictor, BoosterPredictor) and predictor.n_features:
        proba = predictor.predict_proba(np.zeros((1, predictor.n_features)))
        return None if proba is None else [str(i) for i in range(proba.shape[1])]
    return None


LOADERS = {"sklearn": _sklearn, "xgboost": _xgboost, "lightgbm": _lightgbm, "onnx": _onnx}


def load(path: Path, fmt: str) -> Predictor:
    if fmt not in LOADERS:
        raise LoaderError(f"unknown model format {fmt!r}: one of {', '.join(LOADERS)}")
    if not path.exists():
        raise LoaderError(f"no model file at {path}")
    try:
        return LOADERS[fmt](path)
    except LoaderError:
        raise
    except Exception as e:  # each library fails its own way; the pod log needs one line
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise LoaderError(f"cannot load {path} as {fmt}: {first}") from None
