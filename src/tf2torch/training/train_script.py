"""train.py as a PyTorch engineer writes it, for the compile configs it covers.

Only what this model's compile config uses is written: the loss and metric functions, the
optimizer (torch's own where it takes Keras' steps, else a small Keras-exact
`torch.optim.Optimizer`), its schedule, clipping, weight penalties and the Embedding
sparse-gradient path. The step is an explicit loop over a `DataLoader`. Configs this file does
not cover (several outputs, constraints, activity regularizers, a tf.keras Embedding
with clipping, ...) keep the generic script of render_train.py.
"""

from __future__ import annotations

import ast
import json
from typing import Any

import torch

from tf2torch.codegen.render import docstring_text
from tf2torch.ir import Graph
from tf2torch.training.compile_config import Name, Obj, TrainingSpec, render_value
from tf2torch.training.render_train import (
    _check_outputs,
    _inverse,
    _optimizer,
    _used_imports,
    _wrapped,
    library_closure,
    library_source,
    runtime_definition,
    weight_params,
)
from tf2torch.training.specialize import specialize
from tf2torch.training.train_script_parts import (
    IMPORTS,
    MAIN,
    TRAIN_UTILS,
    fill,
    keras_adam_source,
    keras_sgd_source,
    local_imports,
)
from tf2torch.training.weight_map import WeightMap

_CLIPS = ("clipnorm", "global_clipnorm", "clipvalue")
_SPECIALIZED = {"KerasSGD", "KerasAdam", "KerasAdamW"}
_ACCURACY_BY_LOSS = {"sparse_categorical_crossentropy": "sparse_categorical_accuracy",
                     "categorical_crossentropy": "categorical_accuracy"}


def explicit_script_covers(spec: TrainingSpec, graph: Graph) -> bool:
    """Whether this file writes the train.py of `spec` (else render_train.py's generic one)."""
    optimizer = spec.optimizer.kwargs
    # tf.keras sums an Embedding's token rows right after clipping: only the generic optimizers do
    keras2_sparse_clip = spec.keras_major < 3 and any(optimizer.get(k) for k in _CLIPS) \
        and spec.optimizer.ctor in _SPECIALIZED and _has_embeddings(graph)
    return (not spec.outputs and not keras2_sparse_clip and spec.loss_weight is None and not spec.weighted_metrics
            and not spec.constraints and not spec.activity_regularizers
            and spec.reductions <= {"sum_over_batch_size"} and "ignore_class" not in spec.loss.kwargs
            and all(t.obj.ctor == "L1L2" for t in spec.regularizers)
            and not optimizer.get("decay")
            and all(_metric_function(m, spec, graph) is not None for m in spec.metrics))


def _has_embeddings(graph: Graph) -> bool:
    return any(node.op == "embedding" for node in graph.nodes)


def _metric_function(metric: Obj, spec: TrainingSpec, graph: Graph) -> str | None:
    """The per-sample function of a mean metric ("accuracy" resolved as Keras resolves it)."""
    if metric.ctor == "Mean":
        return metric.args[1].name
    if metric.ctor != "Accuracy":
        return None
    shape = graph.outputs[0].spec.shape  # Keras layout
    if shape and shape[-1] == 1:
        return "binary_accuracy"
    return _ACCURACY_BY_LOSS.get(spec.loss.args[0].name)


def _call(fn: str, args: str, kwargs: dict[str, Any]) -> str:
    return f"{fn}({', '.join([args, *(f'{k}={render_value(v)}' for k, v in kwargs.items())])})"


def _written(fn: str, kwargs: dict[str, Any]) -> str:
    """`fn` or `fn(key=value, ...)`: a loss or metric as compile() was given it."""
    return fn if not kwargs else f"{fn}({', '.join(f'{k}={render_value(v)}' for k, v in kwargs.items())})"


def _keras_call(obj: Obj) -> str:
    """As written in Keras: `AdamW(learning_rate=0.02, ...)` (the docstring's summary)."""
    kwargs = {k: v for k, v in obj.kwargs.items() if k != "params"}
    parts = [f"{k}={_keras_call(v) if isinstance(v, Obj) else render_value(v)}" for k, v in kwargs.items()]
    return f"{obj.ctor.removeprefix('Keras')}({', '.join(parts)})"


class _Script:
    """The pieces of one train.py: top-level definitions and the lines of main()."""

    def __init__(self, spec: TrainingSpec, weight_map: WeightMap | None, module: torch.nn.Module,
                 graph: Graph) -> None:
        self.spec, self.graph, self.module = spec, graph, module
        self.embeddings = [n for n, m in module.named_modules() if isinstance(m, torch.nn.Embedding)]
        self.optimizer = _optimizer(spec, module)
        kwargs = spec.optimizer.kwargs
        self.clips = {k: kwargs[k] for k in _CLIPS if kwargs.get(k)}
        # EMA: the Keras-exact class, which keeps the averages (and overwrites with them)
        self.specialized = self.optimizer.ctor in _SPECIALIZED and not kwargs.get("use_ema")
        # Keras on TensorFlow: an Embedding's gradient has one row per token occurrence; clipping
        # measures those rows and Keras 3's adaptive optimizers square them before summing.
        # tf.keras sums them before its optimizers see them: a dense gradient without clipping.
        self.sparse = bool(self.embeddings) and (bool(self.clips) or self.optimizer.ctor != "KerasSGD") \
            and not (spec.keras_major < 3 and self.specialized)
        self.penalties = weight_params(spec.regularizers, weight_map, module, "regularizer") \
            if spec.regularizers else []
        self.library: set[str] = set()
        self.functions = self._specialized_functions()

    def _specialized_functions(self) -> dict[str, str]:
        """Loss and metric functions with their compiled arguments fixed (fn -> source), where
        each is used with one set of arguments and nothing else in train.py needs it generic."""
        uses: dict[str, list[dict[str, Any]]] = {}
        uses.setdefault(self.spec.loss.args[0].name, []).append(self.spec.loss.kwargs)
        for metric in self.spec.metrics:
            uses.setdefault(_metric_function(metric, self.spec, self.graph), []).append(metric.kwargs)
        out = {fn: specialize(runtime_definition(fn), kwargs[0]) for fn, kwargs in uses.items()
               if all(k == kwargs[0] for k in kwargs)}
        needed = {n.id for text in out.values() for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Name)}
        generic = {name for d in library_closure(needed - set(out)) for name in d.names}
        return {fn: text for fn, text in out.items() if fn not in generic}

    def function_call(self, fn: str, kwargs: dict[str, Any]) -> str:
        if fn in self.functions:
            return f"{fn}(y, y_pred)"
        self.library.add(fn)
        return _call(fn, "y, y_pred", kwargs)

    def function_sources(self) -> str:
        """The specialized functions (what they use joins the copied runtime definitions)."""
        for text in self.functions.values():
            self.library |= {n.id for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Name)}
        self.library -= set(self.functions)
        return "\n\n\n".join(self.functions.values())

    # -- definitions --------------------------------------------------------------------------

    def optimizer_source(self) -> str:
        ctor = self.optimizer.ctor
        if ctor == "torch.optim.SGD":
            return ""
        schedule = self.spec.schedule
        if schedule is not None:
            self.library.add(schedule.ctor)
        if not self.specialized:  # the Keras-exact class with its base (clipping included)
            self.library.add(ctor)
            return ""
        kwargs = self.spec.optimizer.kwargs
        if ctor == "KerasSGD":
            return keras_sgd_source(momentum=bool(kwargs.get("momentum")), nesterov=bool(kwargs.get("nesterov")),
                                    weight_decay="weight_decay" in kwargs, sparse=self.sparse,
                                    schedule=schedule is not None)
        return keras_adam_source(ctor, weight_decay=ctor == "KerasAdamW" or "weight_decay" in kwargs,
                                 amsgrad=bool(kwargs.get("amsgrad")), sparse=self.sparse,
                                 schedule=schedule is not None)

    def optimizer_call(self) -> str:
        obj = self.optimizer
        if obj.ctor == "torch.optim.SGD":
            return obj.render(indent=4, width=100)
        kwargs = {k: v for k, v in obj.kwargs.items() if k != "params"}
        if self.specialized:
            kwargs = {k: v for k, v in kwargs.items() if k not in (*_CLIPS, "sum_duplicate_rows")}
        return Obj(obj.ctor, kwargs, args=obj.args or (Name("params"),)).render(indent=4, width=100)

    def loss_source(self) -> str:
        loss = self.spec.loss
        fn = loss.args[0].name
        self.library.add("squeeze_or_expand_to_same_rank")
        call = self.function_call(fn, loss.kwargs)
        cast = [] if fn == "sparse_categorical_crossentropy" else [
            "    y = y.to(y_pred.dtype)",
            "    y, y_pred = squeeze_or_expand_to_same_rank(y, y_pred)  # (batch,) targets of (batch, 1) outputs"]
        return "\n".join([
            ("def compute_loss(y_pred: torch.Tensor, y: torch.Tensor, sample_weight: torch.Tensor | None = None) "
            "-> torch.Tensor:"),
            f'    """Keras\' compiled loss, {docstring_text(_written(fn, loss.kwargs))}, averaged over the batch."""',
            *cast,
            f"    values = {call}",
            "    if sample_weight is not None:  # fit(sample_weight=): still divided by the number of values",
            "        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight.to(values.dtype))",
            "        values = values * sample_weight",
            "    return values.mean()",
        ])

    def penalty_source(self) -> str:
        if not self.penalties:
            return ""
        terms = []
        for name, _, obj in self.penalties:
            param = f"model.get_parameter({name!r})"
            if obj.kwargs.get("l1"):
                terms.append(f"{obj.kwargs['l1']!r} * torch.sum(torch.abs({param}))")
            if obj.kwargs.get("l2"):
                terms.append(f"{obj.kwargs['l2']!r} * torch.sum(torch.square({param}))")
        body = "\n            + ".join(terms) if terms else "torch.zeros(())"
        return "\n".join([
            "def weight_penalty(model: nn.Module) -> torch.Tensor:",
            '    """Keras\' kernel / bias regularizers: loss terms (Keras reports the loss with them)."""',
            f"    return ({body})" if len(terms) > 1 else f"    return {body}",
        ])

    def record_source(self) -> str:
        lines = [
            "def record(averages: Averages, loss: torch.Tensor, y_pred: torch.Tensor, y: torch.Tensor) -> None:",
            '    """Keras\' running means: the loss weighted by the batch size, each metric over every sample."""',
            '    averages.add("loss", float(loss) * len(y), len(y))',
        ]
        if self.spec.keras_major < 3 and self.spec.metrics:
            lines += [
                "    # tf.keras 2 reshapes the targets before its metrics (compile_utils.match_dtype_and_rank)",
                "    if y.dim() == 1 and y_pred.dim() == 2:",
                "        y = y[:, None]",
                "    if y.is_floating_point():",
                "        y = y.to(y_pred.dtype)",
            ]
        for metric in self.spec.metrics:
            fn = _metric_function(metric, self.spec, self.graph)
            name = metric.args[0]
            lines.append(f"    values = {self.function_call(fn, metric.kwargs)}")
            lines.append(f"    averages.add({json.dumps(name)}, float(values.double().sum()), values.numel())")
        return "\n".join(lines)

    def clip_source(self) -> str:
        if not (self.specialized and self.clips):
            return ""
        kind, value = next(iter(self.clips.items()))
        rows = "p.grad._values() if p.grad.is_sparse else p.grad" if self.sparse else "p.grad"
        note = (" (an Embedding's gradient\n    measured over its rows, one per token occurrence, as TensorFlow's "
                "IndexedSlices)") if self.sparse else ""
        head = ["def clip_gradients(params: list[nn.Parameter]) -> None:"]
        if kind == "clipnorm":
            return "\n".join(head + [
                f'    """Keras\' clipnorm={value!r}: each gradient scaled to a norm of at most {value!r}{note}."""',
                "    for p in params:",
                "        if p.grad is not None:",
                f"            g = {rows}",
                "            norm = torch.sqrt(torch.sum(g * g))",
                f"            g.copy_(g * {value!r} / torch.maximum(norm, torch.tensor({value!r})))",
            ])
        if kind == "clipvalue":
            return "\n".join(head + [
                f'    """Keras\' clipvalue={value!r}: every gradient value clamped to +-{value!r}{note}."""',
                "    for p in params:",
                "        if p.grad is not None:",
                f"            g = {rows}",
                f"            g.clamp_({-value!r}, {value!r})",
            ])
        lines = head + [
            (f'    """Keras\' global_clipnorm={value!r}: all gradients scaled together to a norm of at most '
            f'{value!r}{note}."""'),
            "    grads = [p for p in params if p.grad is not None]",
            f"    norm = torch.sqrt(sum(torch.sum(torch.square({rows})) for p in grads))",
            f"    scale = {value!r} * torch.minimum(1.0 / norm, torch.tensor(1.0 / {value!r}))",
            "    for p in grads:",
        ]
        if self.sparse:  # Keras multiplies the IndexedSlices by a tensor: dense, rows summed
            lines += [
                "        if p.grad.is_sparse:  # scaled as TensorFlow does: the token rows summed (dense)",
                "            p.grad = torch.zeros_like(p).index_add_(0, p.grad._indices()[0], p.grad._values() * scale)",
                "        else:",
                "            p.grad.mul_(scale)",
            ]
        else:
            lines.append("        p.grad.mul_(scale)")
        return "\n".join(lines)

    # -- main() ------------------------------------------------------------------------------

    def output_expression(self) -> str:
        axes = _inverse(self.graph.outputs[0].perm)
        return "forward(*inputs)" if axes is None else f"forward(*inputs).permute{axes!r}  # Keras' layout"

    def step_lines(self) -> list[str]:
        penalty = " + weight_penalty(model)" if self.penalties else ""
        lines = [f"y_pred = {self.output_expression()}",
                 f"loss = compute_loss(y_pred, y, sample_weight){penalty}",
                 "# DDP averages the gradients of the processes: each weighs its loss by its share",
                 "(loss * share).backward()"]
        if self.sparse:
            lines += ["if dist.is_initialized():", "    gather_embedding_gradients(model)"]
        if self.specialized and self.clips:
            lines.append("clip_gradients(params)")
        lines.append("optimizer.step()")
        return [" " * 12 + line for line in lines]


def render_explicit_script(spec: TrainingSpec, weight_map: WeightMap | None, module: torch.nn.Module,
                           graph: Graph, class_name: str, source_name: str) -> str:
    _check_outputs(spec, graph)
    script = _Script(spec, weight_map, module, graph)
    definitions = [script.optimizer_source(), script.loss_source(), script.penalty_source(), script.clip_source()]
    record = script.record_source()
    definitions.insert(0, script.function_sources())
    library = library_source(script.library, always=set())
    names = ["loss", *[m.args[0] for m in spec.metrics]]
    input_perms = [None if v.perm is None else tuple(v.perm) for v in graph.inputs]
    main = record + "\n\n\n" + fill(
        MAIN,
        input_perms=repr(input_perms),
        names=json.dumps(names),
        class_name=class_name,
        sparse_setup=_sparse_setup(script),
        ddp_ignore=_ddp_ignore(script),
        optimizer=script.optimizer_call(),
        step="\n".join(script.step_lines()),
        eval_output=script.output_expression().replace("forward(", "model("),
        penalty=" + weight_penalty(model)" if script.penalties else "",
        finalize_ema="    optimizer.finalize_variable_values()  # as fit() ends: the weights become their averages\n"
        if spec.optimizer.kwargs.get("use_ema") else "",
    )
    code = "\n\n\n".join(part for part in [library, *definitions, main] if part)
    used = {n.id for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Name)}
    local = local_imports(class_name, [name for name in TRAIN_UTILS if name in used])
    doc = _docstring(spec, class_name, source_name)
    # isort's spacing: two blank lines before a def or class, one before other statements
    gap = "\n\n\n" if code.startswith(("def ", "class ", "@")) else "\n\n"
    return doc + "\n".join(_used_imports(IMPORTS, code + "\n" + local)) + "\n\n" + local + gap + code


def _sparse_setup(script: _Script) -> str:
    if not script.sparse:
        return ""
    lines = ["    # Keras on TensorFlow sees one gradient row per token occurrence (IndexedSlices)"]
    for name in script.embeddings:
        target = f"model.{name}" if name.isidentifier() else f"model.get_submodule({name!r})"
        lines.append(f"    {target}.sparse = True")
    return "\n".join(lines) + "\n"


def _ddp_ignore(script: _Script) -> str:
    if not script.sparse:
        return ""
    names = [f"{name}.weight" for name in script.embeddings]
    return ("        # DDP would sum the Embedding's token rows of all processes: gather_embedding_gradients\n"
            "        nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(\n"
            f"            model, {json.dumps(names)})\n")


def _docstring(spec: TrainingSpec, class_name: str, source_name: str) -> str:
    loss = spec.loss
    metrics = ", ".join(_written(m.args[0], m.kwargs) for m in spec.metrics) or "none"
    lines = [
        (f'"""Train {class_name} in PyTorch as the Keras model {docstring_text(source_name)} was compiled '
        "(written by tf2torch)."),
        "",
        "    python train.py --data train.npz --epochs 5 --batch-size 32 --validation-split 0.1",
        "    torchrun --nproc_per_node=2 train.py --data train.npz ...",
        "",
        f"Optimizer: {_wrapped(docstring_text(_keras_call(spec.optimizer)))}",
        f"Loss:      {_wrapped(docstring_text(_written(loss.args[0].name, loss.kwargs)))}",
        f"Metrics:   {_wrapped(docstring_text(metrics))}",
    ]
    if spec.regularizers:
        terms = ", ".join(f"{t.layer}.{t.what}: {_keras_call(t.obj)}" for t in spec.regularizers)
        lines.append(f"Penalties: {_wrapped(docstring_text(terms))}")
    lines += [
        "",
        "Data: an .npz with `x` (or `x0`, `x1`, ...), `y` and optionally `sample_weight` in the Keras",
        "layout (images NHWC; permuted here), or --dataset module:attribute, a Dataset of",
        "`(inputs, y)` or `(inputs, y, sample_weight)` in the torch layout. --no-shuffle keeps",
        "fit(shuffle=False)'s batches; --epochs is the total, also with --resume. Under torchrun",
        "BatchNorm uses each process's share of the batch, as Keras' MirroredStrategy.",
        '"""',
        "",
    ]
    return "\n".join(lines)

__all__ = ["explicit_script_covers", "render_explicit_script"]
