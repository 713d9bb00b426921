"""KServe's Python model server for the serving benchmark (runs in KServe's own venv).

    python serving_kserve.py --model_name bench --model_file model.joblib --http_port 8080

The scikit-learn class is kserve's sklearnserver SKLearnModel as it ships
(python/sklearnserver/sklearnserver/model.py: joblib.load, then a synchronous
predict through get_predict_input/get_predict_response), less its storage
download step, because sklearnserver itself is not published on PyPI. KServe
has no ONNX model class of its own (it serves ONNX through Triton), so
--format onnx is a class of ours in the same shape around onnxruntime.
"""

from __future__ import annotations

import argparse
from typing import Any

import joblib
import kserve
from kserve import InferRequest, InferResponse, Model
from kserve.errors import InferenceError
from kserve.utils.utils import get_predict_input, get_predict_response


class SKLearnModel(Model):
    def __init__(self, name: str, model_file: str) -> None:
        super().__init__(name)
        self.model_file = model_file
        self.ready = False

    def load(self) -> bool:
        self._model = joblib.load(self.model_file)
        self.ready = True
        return self.ready

    def predict(
        self, payload: dict[str, Any] | InferRequest, headers: dict[str, str] | None = None
    ) -> dict[str, Any] | InferResponse:
        try:
            instances = get_predict_input(payload)
            result = self._model.predict(instances)
            return get_predict_response(payload, result, self.name)
        except Exception as e:
            raise InferenceError(str(e)) from e


class OnnxModel(Model):
    def __init__(self, name: str, model_file: str) -> None:
        super().__init__(name)
        self.model_file = model_file
        self.ready = False

    def load(self) -> bool:
        import onnxruntime

        self._session = onnxruntime.InferenceSession(
            self.model_file, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        self._label = self._session.get_outputs()[0].name
        self.ready = True
        return self.ready

    def predict(
        self, payload: dict[str, Any] | InferRequest, headers: dict[str, str] | None = None
    ) -> dict[str, Any] | InferResponse:
        try:
            instances = get_predict_input(payload)
            (label,) = self._session.run([self._label], {self._input: instances})
            return get_predict_response(payload, label, self.name)
        except Exception as e:
            raise InferenceError(str(e)) from e


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--model_file", required=True)
    parser.add_argument("--format", choices=["sklearn", "onnx"], default="sklearn")
    args, _ = parser.parse_known_args()
    model_class = SKLearnModel if args.format == "sklearn" else OnnxModel
    model = model_class(args.model_name, args.model_file)
    model.load()
    kserve.ModelServer().start([model])
