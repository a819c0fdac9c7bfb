"""A tiny .tflite file written with the flatbuffers builder (no TensorFlow): input (batch, 5)
-> FULLY_CONNECTED (3 units, bias, fused RELU). Arguments break it for the reader tests.
Imported by basename (tests put this dir on sys.path)."""

from __future__ import annotations

import flatbuffers
import numpy as np
import tflite


def _ints(builder, start, values) -> int:
    start(builder, len(values))
    for v in reversed(values):
        builder.PrependInt32(v)
    return builder.EndVector()


def fully_connected_tflite(weights: np.ndarray, bias: np.ndarray, *, weight_shape=None, output_index: int = 3,
                           batch: int = 1) -> bytes:
    b = flatbuffers.Builder(1024)
    buffers = []
    for data in (None, weights, bias):
        raw = None if data is None else b.CreateByteVector(np.ascontiguousarray(data, np.float32).tobytes())
        tflite.BufferStart(b)
        if raw is not None:
            tflite.BufferAddData(b, raw)
        buffers.append(tflite.BufferEnd(b))
    specs = [("x", [batch, 5], 0), ("dense/kernel", list(weight_shape or weights.shape), 1), ("dense/bias", [3], 2),
             ("dense/Relu", [batch, 3], 0)]
    tensors = []
    for name, shape, buffer in specs:
        name_off = b.CreateString(name)
        shape_off = _ints(b, tflite.TensorStartShapeVector, shape)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape_off)
        tflite.TensorAddType(b, 0)  # FLOAT32
        tflite.TensorAddBuffer(b, buffer)
        tflite.TensorAddName(b, name_off)
        tensors.append(tflite.TensorEnd(b))
    tflite.FullyConnectedOptionsStart(b)
    tflite.FullyConnectedOptionsAddFusedActivationFunction(b, 1)  # RELU
    options = tflite.FullyConnectedOptionsEnd(b)
    ins = _ints(b, tflite.OperatorStartInputsVector, [0, 1, 2])
    outs = _ints(b, tflite.OperatorStartOutputsVector, [output_index])
    tflite.OperatorStart(b)
    tflite.OperatorAddOpcodeIndex(b, 0)
    tflite.OperatorAddInputs(b, ins)
    tflite.OperatorAddOutputs(b, outs)
    tflite.OperatorAddBuiltinOptionsType(b, tflite.BuiltinOptions.FullyConnectedOptions)
    tflite.OperatorAddBuiltinOptions(b, options)
    operator = tflite.OperatorEnd(b)

    def vector(start, items) -> int:
        start(b, len(items))
        for item in reversed(items):
            b.PrependUOffsetTRelative(item)
        return b.EndVector()

    tensors_vec = vector(tflite.SubGraphStartTensorsVector, tensors)
    operators_vec = vector(tflite.SubGraphStartOperatorsVector, [operator])
    graph_in = _ints(b, tflite.SubGraphStartInputsVector, [0])
    graph_out = _ints(b, tflite.SubGraphStartOutputsVector, [3])
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tensors_vec)
    tflite.SubGraphAddOperators(b, operators_vec)
    tflite.SubGraphAddInputs(b, graph_in)
    tflite.SubGraphAddOutputs(b, graph_out)
    subgraph = tflite.SubGraphEnd(b)
    tflite.OperatorCodeStart(b)
    tflite.OperatorCodeAddDeprecatedBuiltinCode(b, tflite.BuiltinOperator.FULLY_CONNECTED)
    tflite.OperatorCodeAddBuiltinCode(b, tflite.BuiltinOperator.FULLY_CONNECTED)
    tflite.OperatorCodeAddVersion(b, 1)
    code = tflite.OperatorCodeEnd(b)
    codes_vec = vector(tflite.ModelStartOperatorCodesVector, [code])
    subgraphs_vec = vector(tflite.ModelStartSubgraphsVector, [subgraph])
    buffers_vec = vector(tflite.ModelStartBuffersVector, buffers)
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, codes_vec)
    tflite.ModelAddSubgraphs(b, subgraphs_vec)
    tflite.ModelAddBuffers(b, buffers_vec)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())
