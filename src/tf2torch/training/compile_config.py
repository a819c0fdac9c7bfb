"""Parse what `model.compile()` stored into typed specs.

Two formats: `compile_config` in a Keras 3 `.keras` archive (objects as
`{"module", "class_name", "config"}`; strings for built-ins) and `training_config` in a
legacy tf.keras 2 `.h5` (`optimizer_config`, `loss`, `metrics` as nested lists of
MeanMetricWrapper configs). Regularizers and constraints come from the layer configs.

A spec names a class or function of the training runtime (optimizers.py, losses.py, ...)
and its keyword arguments, so the same spec renders into train.py and builds the objects of
`ConversionResult.training_setup()`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tf2torch.errors import ConversionError
from tf2torch.frontends.keras.layer_calls import MODEL_CLASSES
from tf2torch.training.losses import LOSS_FUNCTIONS
from tf2torch.training.optimizers import (
    OPTIMIZERS,
    KerasAdadelta,
    KerasAdam,
    KerasAdamax,
    KerasFtrl,
    KerasLegacyAdagrad,
    KerasLegacyNadam,
    KerasLegacyRMSprop,
    KerasNadamTF2,
    KerasSGD,
)
from tf2torch.training.schedules import SCHEDULES


class UnsupportedTraining(ConversionError):
    """A compile() setting that has no exact PyTorch translation yet."""


@dataclass
class Obj:
    """`ctor(*args, **kwargs)` in the training runtime's namespace."""

    ctor: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    args: tuple = ()

    def render(self, indent: int = 0, width: int = 110) -> str:
        parts = [render_value(a) for a in self.args]
        parts += [f"{k}={render_value(v)}" for k, v in self.kwargs.items()]
        flat = f"{self.ctor}({', '.join(parts)})"
        if indent + len(flat) <= width or not parts:
            return flat
        pad = " " * (indent + 4)
        return f"{self.ctor}(\n" + "".join(f"{pad}{p},\n" for p in parts) + " " * indent + ")"


@dataclass
class Name:
    """A bare identifier (a loss function passed by name)."""

    name: str


def render_value(value: Any) -> str:
    if isinstance(value, Obj):
        return value.render()
    if isinstance(value, Name):
        return value.name
    if isinstance(value, (list, tuple)):
        inner = ", ".join(render_value(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    return repr(value)


@dataclass
class WeightTerm:
    """A regularizer or constraint on Keras variable `index` of `layer`."""

    layer: str
    index: int
    what: str  # "kernel", "bias", ...
    obj: Obj


@dataclass
class OutputSpec:
    """What compile() set for one output of a multi-output model."""

    name: str  # Keras' output name (the output layer's name, or the key of a dict output)
    loss: Obj | None
    weight: float | None
    metrics: list[Obj]
    weighted_metrics: list[Obj]
    loss_tracker: bool  # Keras reports "<name>_loss"


@dataclass
class TrainingSpec:
    optimizer: Obj
    loss: Obj
    metrics: list[Obj]
    regularizers: list[WeightTerm]
    activity_regularizers: list[tuple[str, Obj]]
    constraints: list[WeightTerm]
    keras_major: int
    # Single output: loss_weights (a number) and weighted_metrics.
    loss_weight: float | None = None
    weighted_metrics: list[Obj] = field(default_factory=list)
    # Several outputs: one entry per module output, in the module's order (empty: one output),
    # and Keras' flat output order (for targets and sample weights given as lists).
    outputs: list[OutputSpec] = field(default_factory=list)
    target_order: list[str] = field(default_factory=list)

    @property
    def reductions(self) -> set[str]:
        losses = [o.loss for o in self.outputs if o.loss is not None] if self.outputs else [self.loss]
        return {loss.kwargs.get("reduction", "sum_over_batch_size") for loss in losses}

    @property
    def schedule(self) -> Obj | None:
        lr = self.optimizer.kwargs.get("learning_rate")
        return lr if isinstance(lr, Obj) else None


# -- optimizers -----------------------------------------------------------------------------

_BASE_KEYS = {"weight_decay", "clipnorm", "clipvalue", "global_clipnorm", "use_ema", "ema_momentum",
              "ema_overwrite_frequency", "decay"}
_IGNORED_KEYS = {"name", "jit_compile", "is_legacy_optimizer", "loss_scale_factor", "gradient_accumulation_steps",
                 "mesh", "exclude_from_weight_decay"}
_HYPER = {
    "SGD": ("momentum", "nesterov"),
    "Adam": ("beta_1", "beta_2", "epsilon", "amsgrad"),
    "AdamW": ("beta_1", "beta_2", "epsilon", "amsgrad"),
    "RMSprop": ("rho", "momentum", "epsilon", "centered"),
    "Adagrad": ("initial_accumulator_value", "epsilon"),
    "Adadelta": ("rho", "epsilon"),
    "Adamax": ("beta_1", "beta_2", "epsilon"),
    "Nadam": ("beta_1", "beta_2", "epsilon"),
    "Lion": ("beta_1", "beta_2"),
    "Ftrl": ("learning_rate_power", "initial_accumulator_value", "l1_regularization_strength",
             "l2_regularization_strength", "l2_shrinkage_regularization_strength", "beta"),
}
_OPTIMIZER_ALIASES = {name.lower(): name for name in OPTIMIZERS}


def _class_name(obj: dict) -> str:
    name = obj.get("class_name", "")
    return name.split(">")[-1]


# tf.keras 2 optimizers whose update differs from Keras 3's (checked against tf_keras 2.21).
_TF2_OPTIMIZERS = {"Nadam": KerasNadamTF2}
# tf.keras 2 "legacy" optimizers (OptimizerV2: tf.keras.optimizers.legacy.*, and every optimizer
# saved by TF <= 2.10). tf_keras.optimizers.deserialize() tells them apart by the config key
# `is_legacy_optimizer` (the 2.11+ optimizers write False; a config without it is legacy).
_LEGACY_OPTIMIZERS = {"SGD": KerasSGD, "Adam": KerasAdam, "RMSprop": KerasLegacyRMSprop,
                      "Adagrad": KerasLegacyAdagrad, "Adamax": KerasAdamax, "Adadelta": KerasAdadelta,
                      "Ftrl": KerasFtrl, "Nadam": KerasLegacyNadam}


def is_legacy_optimizer(raw: Any, keras_major: int) -> bool:
    if not isinstance(raw, dict):
        return False
    if raw.get("module") == "keras.optimizers.legacy":  # a .keras written by tf.keras 2
        return True
    if keras_major >= 3:
        return False
    config = raw.get("config") or {}
    return bool(config) and config.get("is_legacy_optimizer", True) is not False


def parse_optimizer(raw: Any, keras_major: int = 3) -> Obj:
    if isinstance(raw, str):
        name = _OPTIMIZER_ALIASES.get(raw.lower())
        if name is None:
            raise UnsupportedTraining(f"optimizer {raw!r} is not supported yet")
        return Obj(OPTIMIZERS[name].__name__, {"params": Name("params")})
    name = _class_name(raw)
    if name not in OPTIMIZERS:
        raise UnsupportedTraining(f"optimizer {name!r} is not supported yet (supported: {', '.join(OPTIMIZERS)})")
    classes = OPTIMIZERS
    if is_legacy_optimizer(raw, keras_major):
        if name not in _LEGACY_OPTIMIZERS:
            raise UnsupportedTraining(
                f"the tf.keras legacy optimizer {name} (tf.keras.optimizers.legacy.{name}, or any optimizer saved "
                f"by TF <= 2.10) is not supported: it is implemented apart from tf.keras.optimizers.{name} and has "
                f"not been checked against it (supported legacy optimizers: {', '.join(_LEGACY_OPTIMIZERS)}). Recompile the "
                f"model with tf.keras.optimizers.{name} (TF >= 2.11) or a supported optimizer and save it again"
            )
        if name == "Nadam" and isinstance(raw.get("config", {}).get("learning_rate"), dict):
            raise UnsupportedTraining("the tf.keras legacy Nadam with a learning rate schedule is not supported "
                                      "(tf.keras itself cannot run it)")
        classes = _LEGACY_OPTIMIZERS
    elif keras_major < 3 or "is_legacy_optimizer" in (raw.get("config") or {}):  # Keras 3 never writes it
        classes = {**OPTIMIZERS, **_TF2_OPTIMIZERS}
    config = dict(raw.get("config", {}))
    if config.get("gradient_accumulation_steps"):
        raise UnsupportedTraining("optimizer gradient_accumulation_steps is not supported yet")
    if config.get("loss_scale_factor"):
        raise UnsupportedTraining("optimizer loss_scale_factor is not supported yet")
    if config.get("exclude_from_weight_decay"):
        raise UnsupportedTraining("exclude_from_weight_decay is not supported yet")
    kwargs: dict[str, Any] = {"params": Name("params")}
    lr = config.get("learning_rate", config.get("lr"))
    if lr is not None:
        kwargs["learning_rate"] = parse_schedule(lr) if isinstance(lr, dict) else as_written(float(lr))
    for key, value in config.items():
        if key in ("learning_rate", "lr") or key in _IGNORED_KEYS:
            continue
        if key in _BASE_KEYS or key in _HYPER[name]:
            if value is None or (key == "decay" and not value) or (key == "use_ema" and not value):
                continue
            if key in ("ema_momentum", "ema_overwrite_frequency") and not config.get("use_ema"):
                continue
            kwargs[key] = value
        else:
            raise UnsupportedTraining(f"optimizer {name} option {key}={value!r} is not supported yet")
    return Obj(classes[name].__name__, _without_defaults(classes[name], kwargs))


def as_written(value: float) -> float:
    """Keras saves the learning rate from its float32 variable (0.01 as 0.009999999776482582):
    the shortest decimal that is the same float32, as the user wrote it."""
    single = np.float32(value)
    return float(str(single)) if float(single) == value else value


def _without_defaults(cls: type, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Only what differs from the class's own (Keras) defaults is written out."""
    defaults = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for param in inspect.signature(init).parameters.values():
            if param.default is not inspect.Parameter.empty:
                defaults.setdefault(param.name, param.default)
    return {k: v for k, v in kwargs.items() if k not in defaults or defaults[k] != v or type(defaults[k]) is not type(v)}


def parse_schedule(raw: dict) -> Obj:
    name = _class_name(raw)
    if name not in SCHEDULES:
        raise UnsupportedTraining(f"learning-rate schedule {name!r} is not supported yet")
    config = {k: v for k, v in raw.get("config", {}).items() if k != "name"}
    return Obj(name, _without_defaults(SCHEDULES[name], config))


# -- losses ---------------------------------------------------------------------------------

_LOSS_ALIASES = {
    "mse": "mean_squared_error", "mae": "mean_absolute_error", "mape": "mean_absolute_percentage_error",
    "msle": "mean_squared_logarithmic_error", "kld": "kl_divergence", "kullback_leibler_divergence": "kl_divergence",
    "logcosh": "log_cosh", "huber_loss": "huber",
}
_LOSS_CLASSES = {
    "MeanSquaredError": "mean_squared_error", "MeanAbsoluteError": "mean_absolute_error",
    "MeanAbsolutePercentageError": "mean_absolute_percentage_error",
    "MeanSquaredLogarithmicError": "mean_squared_logarithmic_error", "CosineSimilarity": "cosine_similarity",
    "Huber": "huber", "LogCosh": "log_cosh", "Hinge": "hinge", "SquaredHinge": "squared_hinge",
    "CategoricalHinge": "categorical_hinge", "KLDivergence": "kl_divergence", "Poisson": "poisson",
    "CategoricalCrossentropy": "categorical_crossentropy",
    "SparseCategoricalCrossentropy": "sparse_categorical_crossentropy",
    "BinaryCrossentropy": "binary_crossentropy", "BinaryFocalCrossentropy": "binary_focal_crossentropy",
    "CategoricalFocalCrossentropy": "categorical_focal_crossentropy", "Dice": "dice", "Tversky": "tversky",
    # The `CTC` class only: the string "ctc" stays refused (not in LOSS_FUNCTIONS) for now.
    "CTC": "ctc",
}
_LOSS_ARGS = {"from_logits", "label_smoothing", "axis", "ignore_class", "delta", "apply_class_balancing", "alpha",
              "gamma", "beta"}


def _loss_name(name: str) -> str:
    name = _LOSS_ALIASES.get(name, name)
    if name not in LOSS_FUNCTIONS:
        raise UnsupportedTraining(f"loss {name!r} is not supported yet")
    return name


def _loss_default(fn: str, key: str) -> Any:
    """The runtime function's default for `key` (Dice and Tversky default `axis` to None)."""
    param = inspect.signature(LOSS_FUNCTIONS[fn]).parameters.get(key)
    return -1 if param is None or param.default is inspect.Parameter.empty else param.default


def parse_loss(raw: Any) -> Obj:
    if isinstance(raw, list):
        if len(raw) != 1:
            raise UnsupportedTraining("several compiled losses (multi-output models) are not supported yet")
        raw = raw[0]
    if isinstance(raw, dict) and "class_name" not in raw:
        if len(raw) != 1:
            raise UnsupportedTraining("several compiled losses (multi-output models) are not supported yet")
        raw = next(iter(raw.values()))
    if raw is None:
        raise UnsupportedTraining("the model was compiled without a loss")
    if isinstance(raw, str):
        return Obj("KerasLoss", args=(Name(_loss_name(raw)),))
    name = _class_name(raw)
    config = dict(raw.get("config", {}))
    if name in _LOSS_CLASSES:
        fn = _LOSS_CLASSES[name]
    elif name in ("function", "MeanMetricWrapper") or "fn" in config:
        fn = _loss_name(config.get("fn") or raw.get("config"))
    else:
        raise UnsupportedTraining(f"loss {name!r} is not supported yet")
    kwargs: dict[str, Any] = {}
    reduction = config.get("reduction", "sum_over_batch_size")
    if reduction in ("auto", "sum_over_batch_size", "mean"):
        pass
    elif reduction in ("sum", "none", "mean_with_sample_weight", None):
        kwargs["reduction"] = "none" if reduction is None else reduction
    else:
        raise UnsupportedTraining(f"loss reduction {reduction!r} is not supported yet")
    for key, value in config.items():
        if key in _LOSS_ARGS:
            if key == "axis" and value == _loss_default(fn, "axis"):
                continue
            if key in ("from_logits", "label_smoothing", "ignore_class") and not value and value != 0:
                continue
            if key == "label_smoothing" and value == 0:
                continue
            kwargs[key] = value
    return Obj("KerasLoss", kwargs, args=(Name(fn),))


# -- metrics --------------------------------------------------------------------------------

_METRIC_ALIASES = {"acc": "accuracy", "mse": "mean_squared_error", "mae": "mean_absolute_error",
                   "mape": "mean_absolute_percentage_error", "msle": "mean_squared_logarithmic_error"}
_METRIC_CLASSES = {
    "Accuracy": "accuracy", "BinaryAccuracy": "binary_accuracy", "CategoricalAccuracy": "categorical_accuracy",
    "SparseCategoricalAccuracy": "sparse_categorical_accuracy", "TopKCategoricalAccuracy": "top_k_categorical_accuracy",
    "SparseTopKCategoricalAccuracy": "sparse_top_k_categorical_accuracy", "Precision": "precision",
    "Recall": "recall", "AUC": "auc", "MeanSquaredError": "mean_squared_error",
    "MeanAbsoluteError": "mean_absolute_error", "MeanAbsolutePercentageError": "mean_absolute_percentage_error",
    "MeanSquaredLogarithmicError": "mean_squared_logarithmic_error",
}


def _metric_from_name(name: str, display: str | None = None, kwargs: dict | None = None) -> Obj:
    kwargs = dict(kwargs or {})
    key = _METRIC_ALIASES.get(name, name)
    display = display or name
    if key == "accuracy":
        return Obj("Accuracy", args=(display,))
    if key in ("binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
               "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy"):
        return Obj("Mean", kwargs, args=(display, Name(key)))
    if key in ("precision", "recall"):
        return Obj("ConfusionMetric", {"thresholds": kwargs.get("thresholds") or 0.5}, args=(display, key))
    if key == "auc":
        return Obj("AUC", {"num_thresholds": kwargs.get("num_thresholds", 200)}, args=(display,))
    if key in LOSS_FUNCTIONS:
        return Obj("Mean", args=(display, Name(key)))
    raise UnsupportedTraining(f"metric {name!r} is not supported yet")


def parse_metric(raw: Any, display: str | None = None) -> Obj:
    if isinstance(raw, str):
        return _metric_from_name(raw, display)
    name = _class_name(raw)
    config = dict(raw.get("config", {}))
    display = display or config.get("name")
    if name == "MeanMetricWrapper":
        return _metric_from_name(config["fn"], display)
    if name not in _METRIC_CLASSES:
        raise UnsupportedTraining(f"metric {name!r} is not supported yet")
    if name == "AUC" and (config.get("curve", "ROC") != "ROC" or config.get("multi_label")
                          or config.get("summation_method", "interpolation") != "interpolation"
                          or config.get("from_logits")):
        raise UnsupportedTraining("AUC other than ROC / interpolation / single label is not supported yet")
    if name in ("Precision", "Recall") and (config.get("top_k") or config.get("class_id") is not None):
        raise UnsupportedTraining(f"{name} with top_k or class_id is not supported yet")
    kwargs = {k: v for k, v in config.items() if k in ("threshold", "k", "thresholds", "num_thresholds")}
    return _metric_from_name(_METRIC_CLASSES[name], display, kwargs)


def _flatten_metrics(raw: Any) -> list[Any]:
    if raw is None:
        return []
    if isinstance(raw, dict) and "class_name" not in raw:
        if len(raw) > 1:
            raise UnsupportedTraining("per-output metrics of multi-output models are not supported yet")
        return _flatten_metrics(next(iter(raw.values()), None))
    if isinstance(raw, list):
        out: list[Any] = []
        for item in raw:
            out.extend(_flatten_metrics(item) if isinstance(item, list) or (isinstance(item, dict) and "class_name" not in item) else [item])
        return out
    return [raw]


# -- regularizers and constraints ----------------------------------------------------------

# Variable order inside a layer (Keras creates them in this order; absent ones are skipped).
_VARIABLE_ORDER = ("depthwise_kernel", "pointwise_kernel", "kernel", "recurrent_kernel", "embeddings", "gamma",
                   "beta", "bias")


def _variable_index(config: dict, what: str) -> int | None:
    present = []
    for kind in _VARIABLE_ORDER:
        if kind == "bias":
            exists = config.get("use_bias", True) and ("bias_initializer" in config)
        elif kind == "gamma":
            exists = config.get("scale", True) and "gamma_initializer" in config
        elif kind == "beta":
            exists = config.get("center", True) and "beta_initializer" in config
        else:
            exists = f"{kind}_initializer" in config
        if exists:
            present.append(kind)
    return present.index(what) if what in present else None


def parse_regularizer(raw: dict) -> Obj:
    name = _class_name(raw)
    config = raw.get("config", {})
    if name in ("L1", "L2", "L1L2", "L1_L2"):
        kwargs = {k: float(config[k]) for k in ("l1", "l2") if config.get(k)}
        return Obj("L1L2", kwargs)
    if name == "OrthogonalRegularizer":
        return Obj("Orthogonal", {"factor": config.get("factor", 0.01), "mode": config.get("mode", "rows")})
    raise UnsupportedTraining(f"regularizer {name!r} is not supported yet")


def parse_constraint(raw: dict) -> Obj:
    name = _class_name(raw)
    config = raw.get("config", {})
    if name == "MaxNorm":
        return Obj("MaxNorm", {"max_value": config.get("max_value", 2.0), "axis": config.get("axis", 0)})
    if name == "MinMaxNorm":
        return Obj("MinMaxNorm", {k: config[k] for k in ("min_value", "max_value", "rate", "axis") if k in config})
    if name == "UnitNorm":
        return Obj("UnitNorm", {"axis": config.get("axis", 0)})
    if name == "NonNeg":
        return Obj("NonNeg")
    raise UnsupportedTraining(f"constraint {name!r} is not supported yet")


def collect_weight_terms(model_config: dict, prefix: str = "") -> tuple[list[WeightTerm], list[tuple[str, Obj]], list[WeightTerm]]:
    regularizers: list[WeightTerm] = []
    activity: list[tuple[str, Obj]] = []
    constraints: list[WeightTerm] = []
    for raw in model_config.get("config", {}).get("layers", []):
        config = raw.get("config", {})
        name = prefix + (raw.get("name") or config.get("name", ""))
        if raw.get("class_name") in MODEL_CLASSES:
            if config.get("activity_regularizer"):
                raise UnsupportedTraining(
                    f"nested model {name!r}: an activity_regularizer on a whole model is not supported yet")
            r, a, c = collect_weight_terms(raw, name + "/")
            regularizers += r
            activity += a
            constraints += c
            continue
        if raw.get("class_name") == "ActivityRegularization":
            # Its config has l1 / l2, not an activity_regularizer entry.
            penalty = {k: float(config[k]) for k in ("l1", "l2") if config.get(k)}
            if penalty:
                activity.append((name, Obj("L1L2", penalty)))
            continue
        for key, value in config.items():
            if not value or not isinstance(value, (dict, str)):
                continue
            if key == "activity_regularizer":
                # Applied to the layer's output (training/activity.py finds it in forward()).
                activity.append((name, parse_regularizer(_as_obj(value))))
            elif isinstance(value, dict) and _wrapped_activity(value):
                raise UnsupportedTraining(
                    f"layer {name!r}: an activity_regularizer on the layer it wraps ({key}) is not supported yet")
            elif key.endswith(("_regularizer", "_constraint")):
                what = key.rsplit("_", 1)[0]
                index = _variable_index(config, what)
                if index is None:
                    continue
                if key.endswith("_regularizer"):
                    regularizers.append(WeightTerm(name, index, what, parse_regularizer(_as_obj(value))))
                else:
                    constraints.append(WeightTerm(name, index, what, parse_constraint(_as_obj(value))))
    return regularizers, activity, constraints


def _wrapped_activity(value: Any) -> bool:
    """An activity_regularizer anywhere inside a wrapped layer's config (TimeDistributed,
    Bidirectional, RNN cells)."""
    if isinstance(value, dict):
        if value.get("activity_regularizer"):
            return True
        return any(_wrapped_activity(v) for v in value.values())
    if isinstance(value, list):
        return any(_wrapped_activity(v) for v in value)
    return False


def _as_obj(value: Any) -> dict:
    if isinstance(value, str):  # "l2" shorthand: Keras' default factor 0.01
        table = {"l1": ("L1", {"l1": 0.01}), "l2": ("L2", {"l2": 0.01}), "l1_l2": ("L1L2", {"l1": 0.01, "l2": 0.01}),
                 "max_norm": ("MaxNorm", {}), "non_neg": ("NonNeg", {}), "unit_norm": ("UnitNorm", {})}
        if value.lower() not in table:
            raise UnsupportedTraining(f"regularizer/constraint {value!r} is not supported yet")
        name, config = table[value.lower()]
        return {"class_name": name, "config": config}
    return value


# -- entry point ----------------------------------------------------------------------------


def parse_training(compile_config: dict | None, model_config: dict, keras_major: int) -> TrainingSpec:
    """Both formats: Keras 3 compile_config and tf.keras 2 training_config."""
    if not compile_config:
        raise UnsupportedTraining("the model was saved without compile() information (it was not compiled)")
    if "optimizer_config" in compile_config:  # tf.keras 2 training_config
        optimizer_raw = compile_config["optimizer_config"]
    else:
        optimizer_raw = compile_config.get("optimizer")
    if optimizer_raw is None:
        raise UnsupportedTraining("the compile config names no optimizer")
    regularizers, activity, constraints = collect_weight_terms(model_config)
    spec = TrainingSpec(
        optimizer=parse_optimizer(optimizer_raw, keras_major),
        loss=Obj("KerasLoss"),
        metrics=[],
        regularizers=regularizers,
        activity_regularizers=activity,
        constraints=constraints,
        keras_major=keras_major,
    )
    module_names, flat_names = output_names(model_config)
    if len(module_names) > 1:
        _parse_outputs(spec, compile_config, module_names, flat_names)
        return spec
    spec.loss = parse_loss(compile_config.get("loss"))
    weight = compile_config.get("loss_weights")
    if isinstance(weight, dict):
        weight = next(iter(weight.values()), None) if len(weight) == 1 else _too_many("loss_weights")
    if isinstance(weight, list):
        weight = weight[0] if len(weight) == 1 else _too_many("loss_weights")
    spec.loss_weight = None if weight is None else float(weight)
    plain = _flatten_metrics(compile_config.get("metrics"))
    weighted = _flatten_metrics(compile_config.get("weighted_metrics"))
    if keras_major >= 3:
        names = _keras3_metric_names([plain], [weighted], [""])
        spec.metrics = [parse_metric(m, n) for m, n in zip(plain, names[0][0])]
        spec.weighted_metrics = [parse_metric(m, n) for m, n in zip(weighted, names[1][0])]
    else:
        spec.metrics = [parse_metric(m) for m in plain]
        spec.weighted_metrics = [parse_metric(m) for m in weighted]
    _check_weighted(spec.weighted_metrics)
    return spec


def _too_many(what: str) -> Any:
    raise UnsupportedTraining(f"{what} has several entries but the model has one output")


def output_names(model_config: dict) -> tuple[list[str], list[str]]:
    """Keras' output names in the converted module's order, and in Keras' flat order (dict
    outputs flatten in sorted key order)."""
    config = model_config.get("config", {})
    raw = config.get("output_layers") if isinstance(config, dict) else None
    if model_config.get("class_name") == "Sequential" or not raw:
        return [""], [""]
    if isinstance(raw, dict):
        names = list(raw)
        if any(isinstance(ref, list) and ref and ref[0] != name for name, ref in raw.items()):
            # Keras then names losses after the layers and metrics after the keys.
            raise UnsupportedTraining("training a model with dict outputs whose keys differ from the output layer "
                                      "names is not supported yet")
        return names, sorted(names)
    if isinstance(raw[0], str):  # one output: [layer, node, tensor]
        return [raw[0]], [raw[0]]
    names = [entry[0] for entry in raw]
    if len(set(names)) != len(names):
        raise UnsupportedTraining("training a model that returns several outputs of one layer is not supported yet")
    return names, names


def _by_output(raw: Any, names: list[str], what: str, is_leaf) -> dict[str, Any]:
    """A compile() argument with one entry per output: a dict by output name, a list in
    Keras' flat output order, or one value for every output."""
    if raw is None:
        return {}
    if is_leaf(raw):
        return dict.fromkeys(names, raw)
    if isinstance(raw, dict):
        unknown = sorted(set(raw) - set(names))
        if unknown:
            raise UnsupportedTraining(f"{what} names outputs {unknown} the model does not have (outputs: {names})")
        return {name: raw[name] for name in names if raw.get(name) is not None}
    if isinstance(raw, list) and len(raw) == len(names):
        return {name: value for name, value in zip(names, raw) if value is not None}
    raise UnsupportedTraining(f"{what}={raw!r} does not match the model's {len(names)} outputs {names}")


def _is_loss_leaf(raw: Any) -> bool:
    return isinstance(raw, str) or (isinstance(raw, dict) and "class_name" in raw)


def _metric_list(raw: Any) -> list[Any]:
    if raw is None:
        return []
    if isinstance(raw, list):
        return [m for m in raw if m is not None]
    return [raw]


def _keras3_metric_names(plain: list[list[Any]], weighted: list[list[Any]], prefixes: list[str]) -> list[list[list[str]]]:
    """The names Keras 3 reports (CompileMetrics.result): "<output>_<metric>", a duplicate
    unweighted name gets "_1", "_2"...; a weighted metric named like an unweighted one becomes
    "<output>_weighted_<metric>"."""
    counters: dict[str, int] = {}

    def base(raw: Any) -> str:
        return raw if isinstance(raw, str) else raw.get("config", {}).get("name") or _class_name(raw)

    def numbered(name: str) -> str:  # the first use keeps the name, later ones get _1, _2...
        index = counters.get(name, 0)
        counters[name] = index + 1
        return f"{name}_{index}" if index else name

    out_plain = [[numbered(f"{prefix}{base(raw)}") for raw in metrics] for metrics, prefix in zip(plain, prefixes)]
    out_weighted = []
    for metrics, prefix in zip(weighted, prefixes):
        names = []
        for raw in metrics:
            name = f"{prefix}{base(raw)}"
            names.append(numbered(f"{prefix}weighted_{base(raw)}") if name in counters else numbered(name))
        out_weighted.append(names)
    return [out_plain, out_weighted]


def _check_weighted(metrics: list[Obj]) -> None:
    for metric in metrics:
        if metric.ctor not in ("Mean", "Accuracy"):
            raise UnsupportedTraining(f"weighted_metrics: {metric.ctor} with sample weights is not supported yet")


def _parse_outputs(spec: TrainingSpec, compile_config: dict, module_names: list[str], flat_names: list[str]) -> None:
    losses = _by_output(compile_config.get("loss"), flat_names, "loss", _is_loss_leaf)
    if not losses:
        raise UnsupportedTraining("the model was compiled without a loss")
    weights_raw = compile_config.get("loss_weights")
    if isinstance(weights_raw, (int, float)):
        raise UnsupportedTraining("a single loss_weights number for a model with several outputs")
    weights = _by_output(weights_raw, flat_names, "loss_weights", lambda v: False)
    plain = {n: _metric_list(v) for n, v in _by_output(compile_config.get("metrics"), flat_names, "metrics",
                                                          _is_loss_leaf).items()}
    weighted = {n: _metric_list(v) for n, v in _by_output(compile_config.get("weighted_metrics"), flat_names,
                                                             "weighted_metrics", _is_loss_leaf).items()}
    if spec.keras_major >= 3:
        prefixes = [f"{name}_" for name in flat_names]
        names = _keras3_metric_names([plain.get(n, []) for n in flat_names], [weighted.get(n, []) for n in flat_names],
                                     prefixes)
        plain_names = dict(zip(flat_names, names[0]))
        weighted_names = dict(zip(flat_names, names[1]))
        # Keras 3 tracks per-output losses when more than one loss is compiled; tf.keras 2
        # for every output with a loss of a multi-output model.
        trackers = len(losses) > 1
    else:
        plain_names = {n: [None] * len(plain.get(n, [])) for n in flat_names}
        weighted_names = {n: [None] * len(weighted.get(n, [])) for n in flat_names}
        trackers = True
    by_name = {}
    for name in flat_names:
        loss = parse_loss(losses[name]) if name in losses else None
        weight = weights.get(name)
        metrics = [parse_metric(m, d) for m, d in zip(plain.get(name, []), plain_names[name])]
        weighted_metrics = [parse_metric(m, d) for m, d in zip(weighted.get(name, []), weighted_names[name])]
        _check_weighted(weighted_metrics)
        by_name[name] = OutputSpec(name, loss, None if weight is None else float(weight), metrics, weighted_metrics,
                                   trackers and loss is not None)
    spec.outputs = [by_name[name] for name in module_names]
    spec.target_order = list(flat_names)
    spec.loss = next(by_name[n].loss for n in flat_names if by_name[n].loss is not None)
    spec.metrics = [m for n in flat_names for m in by_name[n].metrics]
    spec.weighted_metrics = [m for n in flat_names for m in by_name[n].weighted_metrics]
