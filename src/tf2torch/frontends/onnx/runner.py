"""onnxruntime as the reference for verification, called like a Keras model by verify/."""

from __future__ import annotations

from typing import Any

import numpy as np

from tf2torch.errors import VerificationUnavailable


class OnnxRuntimeRunner:
    """Runs the original .onnx file on onnxruntime's CPU provider."""

    inference_only = True
    reference_name = "onnxruntime"

    def __init__(self, path: str, input_names: list[str], model_bytes: bytes | None = None) -> None:
        self.path = path
        self.input_names = input_names
        self.model_bytes = model_bytes  # the file as rewritten by the loader, if it was
        self._session: Any = None

    def __call__(self, inputs: Any, training: bool = False) -> list[np.ndarray]:
        if training:
            raise VerificationUnavailable("an ONNX graph is an inference graph: training-mode verification is not available")
        if self._session is None:
            try:
                import onnxruntime
            except ImportError as exc:
                raise VerificationUnavailable("verifying an ONNX model needs onnxruntime: pip install 'tf2torch[onnx]'") from exc
            options = onnxruntime.SessionOptions()
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL  # reference numerics
            self._session = onnxruntime.InferenceSession(self.model_bytes or self.path, options, providers=["CPUExecutionProvider"])
        arrays = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        try:
            results = self._session.run(None, dict(zip(self.input_names, arrays)))
        except Exception as exc:  # noqa: BLE001  (onnxruntime's Fail / InvalidArgument...)
            raise VerificationUnavailable(f"{self.path}: onnxruntime could not run the model: {exc}") from None
        return [np.asarray(r) for r in results]
