"""An ONNX runtime for MLServer, for the serving benchmark (runs in MLServer's own venv).

MLServer ships no maintained ONNX runtime, so the benchmark's ONNX row for
MLServer is this custom runtime, in the shape of mlserver-sklearn's: decode the
request with MLServer's codecs, run onnxruntime, encode the label as "predict".
model-settings.json names it as implementation "serving_mlserver_onnx.OnnxModel".
"""

from __future__ import annotations

from mlserver import MLModel
from mlserver.codecs import NumpyCodec, NumpyRequestCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class OnnxModel(MLModel):
    async def load(self) -> bool:
        import onnxruntime

        uri = await get_model_uri(self._settings)
        self._session = onnxruntime.InferenceSession(uri, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._label = self._session.get_outputs()[0].name
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        decoded = self.decode_request(payload, default_codec=NumpyRequestCodec)
        (label,) = self._session.run([self._label], {self._input: decoded})
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[NumpyCodec.encode_output("predict", label)],
        )
