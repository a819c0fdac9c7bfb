"""convert() and ConversionResult: load -> import -> passes -> emit -> live module -> save/verify."""

from __future__ import annotations

import copy
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tf2torch.codegen.emit import STRUCTURES, GeneratedModule, emit_module
from tf2torch.errors import (
    BadModelFile,
    ConversionError,
    UnsupportedFeature,
    VerificationUnavailable,
    model_file_boundary,
)
from tf2torch.frontends.keras.archive import KerasSource, load_keras_file
from tf2torch.frontends.keras.importer import import_keras_model
from tf2torch.frontends.keras.layer_calls import has_layer_graph
from tf2torch.frontends.keras.live import save_live_model
from tf2torch.frontends.keras.user_code import user_code_session
from tf2torch.ir import Graph
from tf2torch.limits import DEFAULT_LIMITS, Limits
from tf2torch.passes.pipeline import run_passes
from tf2torch.verify.compare import DEFAULT_TOLERANCE, VerificationReport, compare_output
from tf2torch.verify.random_draws import random_outputs
from tf2torch.verify.train_noise import silence_keras_noise, silence_torch_noise

if TYPE_CHECKING:
    import torch

    from tf2torch.verify.layerwise import LayerReport

# torch and the verification runners are imported on first use: `tf2torch convert` (no
# --verify) generates and writes model.py / model.safetensors without loading torch at all.


@dataclass
class ConversionResult:
    """The converted model: `module` is the generated `model.py`, imported and loaded."""

    source_code: str
    graph: Graph
    generated: GeneratedModule
    source_path: str
    keras_major: int
    compile_config: dict | None = None
    _keras_model: Any = field(default=None, repr=False)
    _module: Any = field(default=None, repr=False)
    _temp_dir: tempfile.TemporaryDirectory | None = field(default=None, repr=False)
    _file_path: str | None = field(default=None, repr=False)  # the .keras/.h5 read (a temp file for live models)
    _saved_files: list[str] = field(default_factory=list, repr=False)
    conversion_seconds: float | None = None  # import -> passes -> emit, for the verification report

    @property
    def module(self) -> torch.nn.Module:
        """The generated model.py, imported, with its weights loaded (built on first use)."""
        if self._module is None:
            from tf2torch.codegen.loader import instantiate

            self._module = instantiate(self.generated.source, self.generated.class_name, self.generated.state)
        return self._module

    @property
    def class_name(self) -> str:
        return self.generated.class_name

    @property
    def state_dict(self) -> dict[str, np.ndarray]:
        return self.generated.state

    def save(
        self, directory: str | os.PathLike, report: VerificationReport | None = None, layers: LayerReport | None = None
    ) -> Path:
        """Write model.py, model.safetensors (and verification.json, with `layers` also
        verification.html) atomically into `directory`."""
        from tf2torch.output import write_outputs

        files: dict[str, bytes] = {"model.py": self.source_code.encode()}
        files["model.safetensors"] = _safetensors_bytes(self.generated.state, self.source_path)
        files.update(self._training_files())
        files.update(self._weights_map_file())
        if layers is not None:
            from tf2torch.verify.html_report import render_html, verification_document

            document = verification_document([layers], layers.summary_info, report)
            files["verification.json"] = (json.dumps(document, indent=2) + "\n").encode()
            files["verification.html"] = render_html(document).encode()
        elif report is not None:
            files["verification.json"] = (json.dumps(report.to_dict(), indent=2) + "\n").encode()
        self._saved_files = list(files)
        return write_outputs(Path(directory), files)

    def training_setup(self, module: torch.nn.Module | None = None, *, load_optimizer_state: bool = True) -> Any:
        """The compiled training configuration for `module` (default: self.module): a `Training`
        with .optimizer (its .schedule evaluated per step), .loss_fn(y_true, y_pred), .metrics,
        .regularization, .constraints and .train_step(inputs, y_true). With a trained .keras,
        the optimizer state (moments, iterations) is Keras'."""
        from tf2torch.training.setup import training_setup

        return training_setup(self, module, load_optimizer_state)

    def _weights_map_file(self) -> dict[str, bytes]:
        """weights_map.json: each Keras layer's torch module path; per weight (torch key and
        permutation) too when the training side has traced them (a compiled model)."""
        from tf2torch.codegen.weights_map import weights_map_json

        context = getattr(self, "_training_context", None)
        weight_map = None if context is None else context.weight_map
        return {"weights_map.json": weights_map_json(self.generated, weight_map)}

    def _training_files(self) -> dict[str, bytes]:
        """train.py (+ train_utils.py, optimizer.safetensors) when the model was compiled; a compile setting
        that cannot be translated is a warning here (the model itself is still written)."""
        if not self.compile_config:
            return {}
        import warnings

        from tf2torch.errors import ConversionError
        from tf2torch.training.compile_config import UnsupportedTraining
        from tf2torch.training.setup import training_files

        try:
            return training_files(self)
        except UnsupportedTraining as exc:
            warnings.warn(f"train.py not written: {exc}", stacklevel=3)
            return {}
        except (ConversionError, KeyError, AttributeError, TypeError, ValueError) as exc:
            # The model itself converted; only the training side failed (a tf2torch limitation).
            warnings.warn(f"train.py not written (tf2torch limitation): {type(exc).__name__}: {exc}", stacklevel=3)
            return {}

    def verify(
        self,
        inputs: list[np.ndarray] | str | os.PathLike | None = None,
        *,
        training: bool = False,
        batch_size: int = 2,
        tolerance: float = DEFAULT_TOLERANCE,
        custom_objects: dict | None = None,
        seed: int = 0,
        keras_model: Any = None,
    ) -> VerificationReport:
        """Run Keras and the converted module on the same inputs (random, a list of source-layout
        arrays, or an .npz path) and compare every output."""
        from tf2torch.verify.runner import run_keras, run_torch

        keras_model, arrays = self._reference(inputs, training, batch_size, custom_objects, seed, keras_model)
        silenced = silence_keras_noise(keras_model) if training else []
        expected = run_keras(keras_model, arrays, training, names=self.graph.input_names)
        module = self.module
        if training:
            module = copy.deepcopy(self.module)
            silence_torch_noise(module)
        actual = run_torch(module, self.graph, arrays, training)
        report = VerificationReport(self.source_path, "train" if training else "eval", int(arrays[0].shape[0]),
                                    reference=getattr(keras_model, "reference_name", "Keras"))
        report.silenced = silenced
        if training:
            report.traced_for_inference = [
                n.source.name for n in self.graph.nodes if n.op == "tf_subgraph" and n.attrs.get("differs_in_training")
                and n.attrs.get("train_graph") is None
            ]
        names = self.graph.output_names or [v.name for v in self.graph.outputs]
        drawn = random_outputs(self.graph, training)
        for name, value, ref, out in zip(names, self.graph.outputs, expected, actual):
            report.outputs.append(compare_output(name, ref, out, tolerance, random=any(value is d for d in drawn)))
        return report

    def _reference(
        self, inputs: Any, training: bool, batch_size: int, custom_objects: dict | None, seed: int, keras_model: Any
    ) -> tuple[Any, list[np.ndarray]]:
        """The source model to compare against (loaded if needed) and the inputs to feed."""
        from tf2torch.verify.runner import load_keras_model

        keras_model = self._keras_model if keras_model is None else keras_model
        if keras_model is None:
            keras_model = load_keras_model(self.source_path, self.keras_major, custom_objects)
        arrays = _resolve_inputs(inputs, self.graph, batch_size, seed)
        if training:
            # Training mode updates BatchNorm statistics: never touch the user's objects.
            keras_model = _clone_keras(keras_model)
        return keras_model, arrays

    def verify_layers(
        self,
        inputs: list[np.ndarray] | str | os.PathLike | None = None,
        *,
        training: bool = False,
        batch_size: int = 2,
        tolerance: float = DEFAULT_TOLERANCE,
        custom_objects: dict | None = None,
        seed: int = 0,
        keras_model: Any = None,
        fp64: bool = False,
        progress: Any = None,
    ) -> LayerReport:
        """Compare every Keras layer's output with the converted code's, cumulatively and in
        isolation (fed the Keras inputs), and name the first layer that diverges
        (`report.first_divergence`). `fp64`: re-run both sides in float64 when the cumulative
        error crosses `tolerance`. `report.save_html(path)` writes the visual report."""
        from tf2torch.verify.layerwise import verify_layers

        keras_model, arrays = self._reference(inputs, training, batch_size, custom_objects, seed, keras_model)
        if training:
            silence_keras_noise(keras_model)
        report = verify_layers(self, keras_model, arrays, training, tolerance, fp64=fp64, progress=progress)
        report.attach(self, keras_model, arrays)
        return report


def convert(
    source: str | os.PathLike | Any,
    *,
    model_name: str | None = None,
    frontend: str = "auto",
    signature: str = "serving_default",
    inputs: list[str] | None = None,
    outputs: list[str] | None = None,
    custom_objects: dict | None = None,
    trace_custom_layers: bool = False,
    limits: Limits = DEFAULT_LIMITS,
    allow_lambda: bool = False,
    structure: str = "blocks",
    keep_quantization: bool = False,
) -> ConversionResult:
    """Convert a .keras / .h5 file or a live keras.Model into a PyTorch module.

    A float32 .tflite file (by suffix or its 'TFL3' identifier) goes through the TFLite frontend,
    an .onnx file through the ONNX frontend (verified against onnxruntime). A TF.js model.json:
    a layers-model through the Keras frontend, a graph-model through the TF frontend.
    Also (TF frontend): a SavedModel directory (`signature`), a frozen GraphDef .pb
    (`inputs` / `outputs` node names when they cannot be inferred) or a tf.function /
    ConcreteFunction. `frontend` forces "tf" or "keras". Custom Keras layers without a
    converter are traced through the TF frontend only when the user opts in, with
    `custom_objects` or `trace_custom_layers=True` (that runs the layer's Python code).
    `allow_lambda=True` converts Keras Lambda layers by loading their functions from the
    file and tracing them: that runs code from the file (needs TensorFlow); the result is
    verified against Keras before it is returned.

    Every file is untrusted: any problem reading it raises BadModelFile naming the file and
    the place in it; `limits` bounds the work a file may ask for (tf2torch.limits).
    `structure="blocks"` writes each kind of repeated Keras block as a class; "flat" puts
    every layer in one class.
    `keep_quantization` (quantized .tflite files): round weights and int8 activations to the
    file's grid with torch fake-quant, matching the interpreter's integer arithmetic; by default
    they are dequantized into plain float parameters.
    """
    from tf2torch.frontends.onnx.dispatch import convert_onnx, is_onnx_source
    from tf2torch.frontends.tf.dispatch import FRONTENDS, convert_tf, is_tf_source, saved_model_to_keras_file
    from tf2torch.frontends.tfjs.model_json import is_tfjs_path
    from tf2torch.frontends.tflite.reader import is_tflite_file

    tflite = isinstance(source, (str, os.PathLike)) and is_tflite_file(source)
    if keep_quantization and not tflite:
        raise UnsupportedFeature(f"{source}: keep_quantization (--keep-quantization) applies to quantized .tflite "
                                 "files only; convert this model without it")
    if is_onnx_source(source):
        with model_file_boundary(str(source)):
            return convert_onnx(source, model_name=model_name)
    if frontend not in FRONTENDS:
        raise ValueError(f"frontend must be one of {FRONTENDS}, got {frontend!r}")
    if structure not in STRUCTURES:
        raise ValueError(f"structure must be one of {STRUCTURES}, got {structure!r}")
    if frontend == "auto" and tflite:
        from tf2torch.frontends.tflite.convert import convert_tflite

        with model_file_boundary(str(source)):
            return convert_tflite(str(source), model_name, keep_quantization)
    if frontend == "auto" and is_tfjs_path(source):
        from tf2torch.frontends.tfjs.dispatch import convert_tfjs_graph_model, tfjs_format

        with model_file_boundary(str(source)):
            if tfjs_format(str(source), limits) == "graph-model":
                return convert_tfjs_graph_model(str(source), model_name, limits, inputs=inputs, outputs=outputs)
        # A layers-model is a Keras model: load_keras_file reads it below.
    if frontend == "keras" and isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        with model_file_boundary(str(source)):
            saved_dir, model = saved_model_to_keras_file(str(source), custom_objects)
        try:
            result = convert(model, model_name=model_name, frontend="keras", custom_objects=custom_objects,
                             trace_custom_layers=trace_custom_layers, limits=limits, structure=structure)
        except BaseException:
            saved_dir.cleanup()
            raise
        result._temp_dir = saved_dir
        return result
    if allow_lambda:
        from tf2torch.frontends.keras.importers.lambda_layer import allowing_lambda, verify_lambdas

        with allowing_lambda(custom_objects):
            result = convert(source, model_name=model_name, frontend=frontend, signature=signature, inputs=inputs,
                             outputs=outputs, custom_objects=custom_objects, trace_custom_layers=trace_custom_layers,
                             limits=limits, structure=structure)
            verify_lambdas(result, custom_objects)
        return result
    if frontend == "tf" or (frontend == "auto" and is_tf_source(source)):
        if not isinstance(source, (str, os.PathLike)):
            return convert_tf(source, model_name=model_name, signature=signature, inputs=inputs, outputs=outputs)
        with model_file_boundary(str(source)):
            # A SavedModel's object graph, else its name scopes, give its nesting; a frozen
            # GraphDef's name scopes (frontends/tf/name_scopes.py).
            return convert_tf(source, model_name=model_name, signature=signature, inputs=inputs, outputs=outputs,
                              structure=structure)
    keras_model = None
    temp_dir = None
    if isinstance(source, (str, os.PathLike)):
        path = str(source)
    else:
        temp_dir, path = save_live_model(source)
        keras_model = source
    opted_in = bool(custom_objects) or trace_custom_layers
    try:
        with user_code_session(custom_objects, opted_in, keras_model) as session:
            with model_file_boundary(path):
                keras_source = load_keras_file(path, limits)
                try:
                    if not has_layer_graph(keras_source.model_config):
                        result = _convert_subclassed(keras_source, model_name, structure)
                    else:
                        result = _convert_source(keras_source, model_name, structure)
                finally:
                    keras_source.close()
            result._keras_model = keras_model
            result._temp_dir = temp_dir
            result._file_path = path
            if keras_model is not None:
                result.source_path = getattr(keras_model, "name", "model")
            if session.traced_layers or (opted_in and any(n.op == "custom" for n in result.graph.nodes)):
                _check_against_keras(result, session.reference_model(path, result.keras_major), session.traced_layers)
            if result._keras_model is None and session.keras_model is not None:
                result._keras_model = session.keras_model  # loaded with the user's code: verify() reuses it
    except BaseException:
        if temp_dir is not None:
            temp_dir.cleanup()
        raise
    return result


def _convert_subclassed(source: KerasSource, model_name: str | None, structure: str) -> ConversionResult:
    """A model class whose config holds only constructor arguments (a subclassed keras.Model,
    a keras_hub backbone or task): with its code, Keras builds it; a functional one is walked
    layer by layer (its layers converted natively, else traced), another is traced whole."""
    from tf2torch.frontends.keras.user_code import (
        UnsavableLayers,
        current_session,
        has_functional_graph,
        is_keras_hub_class,
    )
    from tf2torch.frontends.tf.keras_layers import import_traced_model

    session = current_session()
    class_name = str(source.model_config.get("class_name"))
    if not session.opted_in and not is_keras_hub_class(source.model_config):
        raise BadModelFile(
            f"{source.path}: {class_name} is a subclassed keras.Model: its config has no layer graph, "
            "so its call() must be traced with TensorFlow. Pass the module defining it: "
            "--custom-code my_model.py (API: custom_objects={...})."
        )
    model = session.reference_model(source.path, source.keras_major)
    name = model_name or Path(source.path).stem
    if has_functional_graph(model):
        try:
            return _convert_functional_copy(model, source, name, structure)
        except UnsavableLayers:
            pass  # a layer's get_config() fails (a keras_hub bug): trace the model whole
    graph = import_traced_model(model, source.path, source.model_config)
    session.traced_layers.append(class_name)
    graph = run_passes(graph)
    generated = emit_module(graph, Path(source.path).name, name, structure)
    compile(generated.source, "model.py", "exec")
    return ConversionResult(source_code=generated.source, graph=graph, generated=generated,
                            source_path=source.path, keras_major=source.keras_major)


def _convert_functional_copy(model: Any, source: KerasSource, name: str, structure: str) -> ConversionResult:
    """The functional graph of a Functional subclass: a plain keras.Model over the same layers
    (its config lists them), saved and converted like any .keras file."""
    from tf2torch.frontends.keras.user_code import current_session, save_functional_copy

    with tempfile.TemporaryDirectory(prefix="tf2torch-functional-") as directory:
        path, copy = save_functional_copy(model, directory, Path(source.path).stem)
        session = current_session()
        session.keras_model = copy  # layers are traced from, and checked against, this
        session.traced_layers.append(f"{model.name} (built by its code)")
        copied = load_keras_file(path)
        try:
            result = _convert_source(copied, name, structure)
        except ConversionError as exc:
            exc.args = (str(exc).replace(path, source.path),)  # name the user's file, not the copy
            raise
        finally:
            copied.close()
    session.keras_model = model  # the result is checked against the model itself, not the copy
    result.source_path = source.path
    return result


def _check_against_keras(result: ConversionResult, keras_model: Any, traced: list[str]) -> None:
    """A conversion that ran user code (traced layers, user converters) is checked against
    Keras on random inputs before it is returned: a wrong result is refused, never written."""
    from tf2torch.errors import SelfCheckFailed

    try:
        report = result.verify(keras_model=keras_model, batch_size=2, seed=12345)
    except ConversionError:
        raise
    except Exception as exc:  # running either side failed (e.g. random token ids out of range)
        raise SelfCheckFailed(
            f"{result.source_path}: the conversion ran user code, so it is checked against Keras on random "
            f"inputs, and that check could not run ({type(exc).__name__}: {str(exc).strip()[:300]}); "
            "nothing was written."
        ) from exc
    if not report.ok:
        layers = f" (traced layers: {', '.join(traced)})" if traced else ""
        raise SelfCheckFailed(
            f"{result.source_path}: the converted model does not match Keras on random inputs{layers}; "
            f"nothing was written.\n{report.table()}"
        )
    trained = [n.source.name for n in result.graph.nodes if n.op == "tf_subgraph" and n.attrs.get("train_graph")]
    if trained:  # their training-mode paths were traced too: checked in train mode the same way
        report = result.verify(keras_model=keras_model, training=True, batch_size=2, seed=12345)
        if not report.ok:
            raise SelfCheckFailed(
                f"{result.source_path}: in training mode, the converted model does not match Keras on random "
                f"inputs (layers traced with training=True: {', '.join(trained)}); nothing was written.\n"
                f"{report.table()}"
            )


def _convert_source(source: KerasSource, model_name: str | None, structure: str) -> ConversionResult:
    started = time.perf_counter()
    graph = import_keras_model(source)
    if not graph.named_outputs:
        graph.output_names = [v.name for v in graph.outputs]
    graph = run_passes(graph)
    name = model_name or Path(source.path).stem
    generated = emit_module(graph, Path(source.path).name, name, structure)
    compile(generated.source, "model.py", "exec")  # a syntax check; the module is built on first use
    return ConversionResult(
        source_code=generated.source,
        graph=graph,
        generated=generated,
        source_path=source.path,
        keras_major=source.keras_major,
        compile_config=source.compile_config,
        conversion_seconds=time.perf_counter() - started,
    )


def _safetensors_bytes(state: dict[str, np.ndarray], source: str) -> bytes:
    from tf2torch.codegen.safetensors_file import safetensors_bytes

    return safetensors_bytes(state, metadata={"converted_from": os.path.basename(source), "by": "tf2torch"})


def _resolve_inputs(inputs: Any, graph: Graph, batch_size: int, seed: int) -> list[np.ndarray]:
    if inputs is None:
        from tf2torch.verify.runner import random_inputs

        return random_inputs(graph, batch_size, seed)
    if isinstance(inputs, (str, os.PathLike)):
        with np.load(inputs, allow_pickle=False) as data:
            names = list(data.files)
            arrays = [data[n] for n in names]
        if len(arrays) != len(graph.inputs):
            raise BadModelFile(f"{inputs}: holds {len(arrays)} arrays, the model takes {len(graph.inputs)} inputs")
        return arrays
    return [np.asarray(a) for a in (inputs if isinstance(inputs, (list, tuple)) else [inputs])]


def _clone_keras(model: Any) -> Any:
    if getattr(model, "inference_only", False):  # a TF graph (SavedModel signature, .pb, tf.function)
        raise VerificationUnavailable("a TF graph is an inference graph: training-mode verification is not available")
    try:
        import keras

        if isinstance(model, keras.Model):
            clone = keras.models.clone_model(model)
            clone.set_weights(model.get_weights())
            return clone
    except ImportError:
        pass
    try:
        import tf_keras

        clone = tf_keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
        return clone
    except ImportError as exc:
        raise VerificationUnavailable("training-mode verification needs Keras") from exc
