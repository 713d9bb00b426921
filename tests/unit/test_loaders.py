"""Every format loads through one interface and predicts what its library predicts."""

from __future__ import annotations

import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from ciclo.serving.loaders import LoaderError, load

X, Y = load_iris(return_X_y=True)
BINARY = Y < 1  # setosa or not


def test_sklearn(tmp_path: Path):
    model = LogisticRegression(max_iter=500).fit(X, Y)
    joblib.dump(model, tmp_path / "m.joblib")
    loaded = load(tmp_path / "m.joblib", "sklearn")
    assert loaded.n_features == 4
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))


def test_xgboost_multiclass_and_binary(tmp_path: Path):
    import xgboost

    for target, name in ((Y, "multi"), (BINARY.astype(int), "binary")):
        model = xgboost.XGBClassifier(n_estimators=5, max_depth=2).fit(X, target)
        model.save_model(tmp_path / f"{name}.json")
        loaded = load(tmp_path / f"{name}.json", "xgboost")
        assert loaded.n_features == 4
        np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X), rtol=1e-6)
        np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_lightgbm(tmp_path: Path):
    import lightgbm

    model = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, Y)
    model.booster_.save_model(str(tmp_path / "m.txt"))
    loaded = load(tmp_path / "m.txt", "lightgbm")
    assert loaded.n_features == 4
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X), rtol=1e-6)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_onnx_from_scikit_learn(tmp_path: Path):
    from skl2onnx import to_onnx

    model = LogisticRegression(max_iter=500).fit(X, Y)
    (tmp_path / "m.onnx").write_bytes(to_onnx(model, X[:1].astype(np.float32)).SerializeToString())
    loaded = load(tmp_path / "m.onnx", "onnx")
    assert loaded.n_features == 4
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X), atol=1e-5)


def test_a_regressor_has_no_probabilities(tmp_path: Path):
    import xgboost

    model = xgboost.XGBRegressor(n_estimators=3).fit(X, X[:, 0])
    model.save_model(tmp_path / "r.json")
    loaded = load(tmp_path / "r.json", "xgboost")
    assert loaded.predict_proba(X) is None
    np.testing.assert_allclose(loaded.predict(X), model.predict(X), rtol=1e-6)


@pytest.mark.parametrize(
    ("fmt", "module", "extra"),
    [
        ("xgboost", "xgboost", "xgboost"),
        ("lightgbm", "lightgbm", "lightgbm"),
        ("onnx", "onnxruntime", "onnx"),
        ("sklearn", "joblib", "sklearn"),
    ],
)
def test_a_missing_library_names_the_extra(tmp_path: Path, monkeypatch, fmt, module, extra):
    (tmp_path / "m").write_bytes(b"x")
    monkeypatch.setitem(sys.modules, module, None)  # import now raises ImportError
    with pytest.raises(
        LoaderError, match=rf"format {fmt} needs {module}: pip install 'ciclo\[{extra}\]'"
    ):
        load(tmp_path / "m", fmt)


def test_a_broken_file_and_an_unknown_format_are_one_line(tmp_path: Path):
    (tmp_path / "m.json").write_text("not a model")
    with pytest.raises(LoaderError) as caught:
        load(tmp_path / "m.json", "xgboost")
    assert str(caught.value).startswith("cannot load") and "\n" not in str(caught.value)
    with pytest.raises(LoaderError, match="unknown model format 'pytorch'"):
        load(tmp_path / "m.json", "pytorch")
    with pytest.raises(LoaderError, match="no model file"):
        load(tmp_path / "absent", "sklearn")
