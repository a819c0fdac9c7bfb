"""ONNX frontend: an .onnx file (already channels-first) -> IR, verified against onnxruntime."""
