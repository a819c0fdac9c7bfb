"""Write train.py, and build the same objects for `ConversionResult.training_setup()`.

One source of truth: the runtime files (optimizers.py, schedules.py, losses.py, metrics.py,
regularizers.py, constraints.py, runtime.py) import torch only; the definitions a model
needs are copied from them into train.py (chosen by following names), and
`training_setup()` executes exactly that code.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tf2torch.codegen.render import docstring_text
from tf2torch.ir import Graph
from tf2torch.training.compile_config import Name, Obj, TrainingSpec, UnsupportedTraining, WeightTerm, render_value
from tf2torch.training.weight_map import WeightMap

RUNTIME_FILES = ("optimizers", "schedules", "losses", "metrics", "regularizers", "constraints", "runtime")
REGISTRIES = {"OPTIMIZERS", "SCHEDULES", "LOSS_FUNCTIONS", "METRICS"}
HEADER_IMPORTS = [
    "from __future__ import annotations",
    "",
    "import math",
    "from collections.abc import Callable, Iterable",
    "",
    "import torch",
    "import torch.nn.functional as F",
]
_NEEDS_ALWAYS = {"Training"}


@dataclass
class _Definition:
    names: set[str]
    uses: set[str]
    source: str


def _definitions() -> list[_Definition]:
    out: list[_Definition] = []
    here = Path(__file__).parent
    for stem in RUNTIME_FILES:
        text = (here / f"{stem}.py").read_text()
        tree = ast.parse(text)
        lines = text.splitlines()
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(node, ast.Expr) and isinstance(getattr(node, "value", None), ast.Constant):
                continue  # module docstring
            names: set[str] = set()
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names |= {t.id for t in targets if isinstance(t, ast.Name)}
            if names & REGISTRIES:
                continue
            start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
            uses = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            out.append(_Definition(names, uses, "\n".join(lines[start : node.end_lineno])))
    return out


def library_closure(needed: set[str]) -> list[_Definition]:
    """The runtime definitions `needed` depends on, in file order."""
    definitions = _definitions()
    by_name = {name: d for d in definitions for name in d.names}
    keep: set[int] = set()
    todo = list(needed)
    while todo:
        name = todo.pop()
        d = by_name.get(name)
        if d is None or id(d) in keep:
            continue
        keep.add(id(d))
        todo.extend(d.uses)
    return [d for d in definitions if id(d) in keep]


def runtime_definition(name: str) -> str:
    """The source of one runtime definition."""
    return next(d.source for d in _definitions() if name in d.names)


def library_source(needed: set[str], always: set[str] = _NEEDS_ALWAYS) -> str:
    """The runtime definitions `needed` (and `always`) depend on, in file order."""
    return "\n\n\n".join(d.source for d in library_closure(needed | always))


# -- the build_training() function -----------------------------------------------------------


def _names_in(value: Any) -> set[str]:
    text = render_value(value)
    return {n.id for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Name)}


def _inverse(perm: tuple[int, ...] | None) -> tuple[int, ...] | None:
    return None if perm is None else tuple(int(i) for i in np.argsort(perm))


def weight_params(terms: list[WeightTerm], weight_map: WeightMap, module: torch.nn.Module,
                  kind: str) -> list[tuple[str, tuple[int, ...] | None, Obj]]:
    """`(torch parameter name, keras_axes, obj)` of each term; frozen weights are skipped as in Keras."""
    params = dict(module.named_parameters())
    entries = []
    for term in terms:
        i = weight_map.variable(term.layer, term.index)
        source = None if i is None else weight_map.tensor_of(i)
        if source is None or source.name not in params:
            raise UnsupportedTraining(
                f"layer {term.layer!r}: the {term.what} {kind} cannot be carried over: its torch parameter "
                "is not a one-to-one copy of the Keras variable"
            )
        if not params[source.name].requires_grad:
            continue
        axes = None if source.same_layout else source.keras_axes
        axis_free = term.obj.ctor in ("L1L2", "NonNeg")
        if axes is None and not source.same_layout and not axis_free:
            raise UnsupportedTraining(
                f"layer {term.layer!r}: the {term.what} {kind} {term.obj.ctor} depends on axes, and the torch "
                "layout of this weight is not a permutation of the Keras layout"
            )
        entries.append((source.name, axes, term.obj))
    return entries


def _weight_terms(terms: list[WeightTerm], weight_map: WeightMap, module: torch.nn.Module, kind: str) -> list[str]:
    """`(name, param, keras_axes, obj)` entries, as text."""
    return [f"({name!r}, model.get_parameter({name!r}), {axes!r}, {obj.render()})"
            for name, axes, obj in weight_params(terms, weight_map, module, kind)]


def setup_source(spec: TrainingSpec, weight_map: WeightMap | None, module: torch.nn.Module, graph: Graph,
                 submodule_attrs: dict[str, Any]) -> tuple[str, set[str]]:
    """The text of `build_training(model)` and the runtime names it uses."""
    _check_outputs(spec, graph)
    needed: set[str] = set()
    optimizer = _optimizer(spec, module)
    lines = [
        "def build_training(model: torch.nn.Module) -> Training:",
        '    """Optimizer (with its schedule), loss, metrics, regularization and constraints as the',
        '    Keras model was compiled."""',
        *_sparse_embedding_lines(module),
        "    params = [p for p in model.parameters() if p.requires_grad]",
        f"    optimizer = {optimizer.render(indent=4, width=100)}",
    ]
    needed |= _names_in(optimizer)
    extra = _compile_lines(spec, lines, needed)
    if (spec.regularizers or spec.constraints) and weight_map is None:
        raise UnsupportedTraining("regularizers and constraints need the weight map")
    if spec.regularizers:
        entries = _weight_terms(spec.regularizers, weight_map, module, "regularizer")
        needed |= {"Regularization"} | {t.obj.ctor for t in spec.regularizers}
        lines.append("    regularization = Regularization([")
        lines += [f"        {e}," for e in entries]
        lines.append("    ])")
        extra.append("regularization=regularization")
    if spec.constraints:
        entries = _weight_terms(spec.constraints, weight_map, module, "constraint")
        needed |= {"Constraints"} | {t.obj.ctor for t in spec.constraints}
        lines.append("    constraints = Constraints([")
        lines += [f"        {e}," for e in entries]
        lines.append("    ])")
        extra.append("constraints=constraints")
    if spec.activity_regularizers:
        # submodule_attrs: Keras layer -> ActivityTap (training/activity.py): the torch module
        # to hook, and the statements of forward() that follow it up to the layer's output.
        entries = []
        for layer, obj in spec.activity_regularizers:
            tap = submodule_attrs.get(layer)
            if tap is None or isinstance(tap, str):
                raise UnsupportedTraining(f"layer {layer!r}: activity regularizer on a layer without its own torch module")
            if tap.function is not None:
                lines += ["", *textwrap.indent(tap.function, "    ").splitlines()]
            entries.append(f"({tap.attr!r}, {obj.render()}, {tap.function_name})")
            needed.add(obj.ctor)
        needed.add("ActivityRegularization")
        if lines[-1].startswith("        "):  # after the functions above
            lines.append("")
        lines.append("    activity = ActivityRegularization(model, [")
        lines += [f"        {e}," for e in entries]
        lines.append("    ])")
        extra.append("activity=activity")
    extra += _output_axes_args(spec, graph)
    if spec.keras_major == 2 and (spec.metrics or spec.weighted_metrics or any(
            o.metrics or o.weighted_metrics for o in spec.outputs)):
        extra.append("keras2_targets=True")
    args = ", ".join(["model", "optimizer", "loss_fn", "metrics"] + extra)
    if len(args) > 86:  # one argument a line
        args = "\n" + "".join(f"        {a},\n" for a in ["model", "optimizer", "loss_fn", "metrics"] + extra) + "    "
    lines.append(f"    return Training({args})")
    return "\n".join(lines), needed


def _embeddings(module: torch.nn.Module) -> list[str]:
    return [name for name, m in module.named_modules() if isinstance(m, torch.nn.Embedding)]


def _sparse_embedding_lines(module: torch.nn.Module) -> list[str]:
    """Sparse gradients for every nn.Embedding: one row per token occurrence, as TensorFlow's
    IndexedSlices, which Keras' clipping and optimizers treat differently from summed rows."""
    names = _embeddings(module)
    if not names:
        return []
    lines = ["    # Keras on TensorFlow sees one gradient row per token occurrence (IndexedSlices):",
             "    # sparse gradients keep them for the optimizer."]
    for name in names:
        target = f"model.{name}" if name.isidentifier() else f"model.get_submodule({name!r})"
        lines.append(f"    {target}.sparse = True")
    return lines


# Keras SGD options torch.optim.SGD has no equivalent for.
_KERAS_ONLY_SGD_OPTIONS = ("clipnorm", "clipvalue", "global_clipnorm", "weight_decay", "decay", "use_ema")


def _optimizer(spec: TrainingSpec, module: torch.nn.Module) -> Obj:
    """The optimizer's constructor call: torch's own where it is Keras' update, else the
    Keras-exact class (tf.keras: with repeated embedding rows summed after clipping)."""
    optimizer = spec.optimizer
    kwargs = optimizer.kwargs
    if optimizer.ctor == "KerasSGD" and not isinstance(kwargs.get("learning_rate", 0.01), Obj) \
            and not any(kwargs.get(k) for k in _KERAS_ONLY_SGD_OPTIONS) and not _embeddings(module):
        # At a constant learning rate torch's momentum buffer is Keras' divided by -lr: the
        # same steps (state_transfer.as_torch_sgd_state converts saved Keras state).
        torch_kwargs = {"lr": kwargs.get("learning_rate", 0.01)}
        torch_kwargs.update({k: kwargs[k] for k in ("momentum", "nesterov") if kwargs.get(k)})
        return Obj("torch.optim.SGD", torch_kwargs, (Name("params"),))
    if spec.keras_major >= 3 or not _embeddings(module):
        return optimizer
    return Obj(optimizer.ctor, {**kwargs, "sum_duplicate_rows": True}, optimizer.args)


# -- several outputs, loss weights, weighted metrics -----------------------------------------


def _check_outputs(spec: TrainingSpec, graph: Graph) -> None:
    expected = len(spec.outputs) or 1
    if len(graph.outputs) != expected:
        raise UnsupportedTraining(f"the compile config describes {expected} outputs, the converted module returns "
                                  f"{len(graph.outputs)}")
    if spec.outputs:
        for output, value in zip(spec.outputs, graph.outputs):
            if output.loss is not None:
                _check_keras_logits_quirk(output.loss, value)
    else:
        _check_keras_logits_quirk(spec.loss, graph.outputs[0])
    if "none" in spec.reductions and (spec.regularizers or spec.activity_regularizers):
        # Keras' compute_loss() stacks the per-sample compiled loss with the scalar
        # regularization losses, which fails in Keras itself.
        raise UnsupportedTraining("a loss with reduction='none' together with regularization losses (Keras "
                                  "cannot add them either)")


def _dict_lines(name: str, entries: list[tuple[str, str]]) -> list[str]:
    flat = f"    {name} = {{{', '.join(f'{k!r}: {v}' for k, v in entries)}}}"
    if len(flat) <= 110:
        return [flat]
    return [f"    {name} = {{", *[f"        {k!r}: {v}," for k, v in entries], "    }"]


def _compile_lines(spec: TrainingSpec, lines: list[str], needed: set[str]) -> list[str]:
    """loss_fn / metrics (and loss_weights, weighted_metrics) statements; returns the extra
    keyword arguments of Training()."""
    extra = []
    if not spec.outputs:
        lines.append(f"    loss_fn = {spec.loss.render(indent=4, width=100)}")
        lines.append(f"    metrics = {render_value(spec.metrics)}")
        needed |= _names_in(spec.loss) | _names_in(spec.metrics)
        if spec.weighted_metrics:
            lines.append(f"    weighted_metrics = {render_value(spec.weighted_metrics)}")
            needed |= _names_in(spec.weighted_metrics)
            extra.append("weighted_metrics=weighted_metrics")
        if spec.loss_weight is not None:
            extra.append(f"loss_weights={spec.loss_weight!r}")
        return extra
    by_name = {o.name: o for o in spec.outputs}
    ordered = [by_name[n] for n in spec.target_order]  # Keras sums the losses in this order
    losses = [(o.name, o.loss.render()) for o in ordered if o.loss is not None]
    lines += _dict_lines("loss_fn", losses)
    needed |= {n for o in ordered if o.loss is not None for n in _names_in(o.loss)}
    lines += _dict_lines("metrics", [(o.name, render_value(o.metrics)) for o in ordered if o.metrics])
    needed |= {n for o in ordered for n in _names_in(o.metrics) | _names_in(o.weighted_metrics)}
    if any(o.weighted_metrics for o in ordered):
        lines += _dict_lines("weighted_metrics", [(o.name, render_value(o.weighted_metrics))
                                                  for o in ordered if o.weighted_metrics])
        extra.append("weighted_metrics=weighted_metrics")
    if any(o.weight is not None for o in ordered):
        extra.append(f"loss_weights={ {o.name: o.weight for o in ordered if o.weight is not None}!r}")
    extra.append(f"output_names={[o.name for o in spec.outputs]!r}")
    if spec.target_order != [o.name for o in spec.outputs]:
        extra.append(f"target_order={spec.target_order!r}")
    trackers = [o.name for o in ordered if o.loss_tracker]
    if trackers:
        extra.append(f"loss_trackers={trackers!r}")
    return extra


def _output_axes_args(spec: TrainingSpec, graph: Graph) -> list[str]:
    """Training(output_axes=): the permutation back to Keras' layout of each NCHW output."""
    if not spec.outputs:
        axes = _inverse(graph.outputs[0].perm)
        return [] if axes is None else [f"output_axes={axes!r}"]
    axes = {o.name: _inverse(v.perm) for o, v in zip(spec.outputs, graph.outputs) if v.perm is not None}
    return [f"output_axes={axes!r}"] if axes else []


def _check_keras_logits_quirk(loss: Obj, output: Any) -> None:
    """On TensorFlow, Keras' binary cross-entropy takes the *inputs* of a softmax output as
    sigmoid logits (backend/tensorflow/nn.py _get_logits): not reproducible from the
    probabilities the converted module returns."""
    producer = output.producer
    fn = loss.args[0].name if loss.args else ""
    if producer is not None and producer.op == "softmax" and fn in ("binary_crossentropy", "binary_focal_crossentropy") \
            and not loss.kwargs.get("from_logits"):
        raise UnsupportedTraining(
            f"{fn} on a softmax output: Keras (TensorFlow backend) then uses the softmax's inputs as sigmoid "
            "logits, which the converted module does not expose"
        )


def training_namespace(code: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "tf2torch_training"}
    exec(compile(code, "<tf2torch training>", "exec"), namespace)  # noqa: S102 (our own generated code)
    return namespace


def training_code(spec: TrainingSpec, weight_map: WeightMap | None, module: torch.nn.Module, graph: Graph,
                  submodule_attrs: dict[str, Any]) -> str:
    """Imports + runtime definitions + build_training(): the top half of train.py."""
    setup, needed = setup_source(spec, weight_map, module, graph, submodule_attrs)
    return "\n".join(HEADER_IMPORTS) + "\n\n\n" + library_source(needed) + "\n\n\n" + setup + "\n"


# -- train.py ----------------------------------------------------------------------------------

MAIN_TEMPLATE = '''

# -- data, checkpoints and the loop -----------------------------------------------------------

INPUT_PERMS = {input_perms}  # Keras layout -> torch layout of each model input (None: same)


def numbered(files: list[str], prefix: str) -> list[str]:
    """`x0`, `x1`, ..., `x10` in numeric order."""
    found = [k for k in files if k.startswith(prefix) and k[len(prefix):].isdigit()]
    return sorted(found, key=lambda k: int(k[len(prefix):]))


def load_arrays(path: str):
    """An .npz in the Keras layout: `x` (or `x0`, `x1`, ... for several inputs), `y` (or `y0`,
    `y1`, ... for several outputs, in Keras' output order) and optionally `sample_weight`
    (or `sample_weight0`, ... one per output)."""
    with np.load(path, allow_pickle=False) as data:
        targets = data["y"] if "y" in data.files else [data[k] for k in numbered(data.files, "y")]
        weights = None
        if "sample_weight" in data.files:
            weights = data["sample_weight"]
        elif numbered(data.files, "sample_weight"):
            weights = [data[k] for k in numbered(data.files, "sample_weight")]
        others = ["y", "sample_weight", *numbered(data.files, "y"), *numbered(data.files, "sample_weight")]
        names = ["x"] if "x" in data.files else numbered(data.files, "x") or sorted(set(data.files) - set(others))
        inputs = [data[k] for k in names]
    inputs = [a if p is None else np.ascontiguousarray(np.transpose(a, p)) for a, p in zip(inputs, INPUT_PERMS)]
    return inputs, targets, weights


def as_tensors(value):
    if isinstance(value, (list, tuple)):
        return [torch.from_numpy(np.asarray(v)) for v in value]
    return torch.from_numpy(np.asarray(value))


def pick(value, i):
    return [v[i] for v in value] if isinstance(value, list) else value[i]


class ArrayDataset(torch.utils.data.Dataset):
    def __init__(self, inputs: list[np.ndarray], targets, weights=None) -> None:
        self.inputs = [torch.from_numpy(np.asarray(a)) for a in inputs]
        self.targets = as_tensors(targets)
        self.weights = None if weights is None else as_tensors(weights)

    def __len__(self) -> int:
        return len(self.inputs[0])

    def __getitem__(self, i):
        if self.weights is None:
            return [a[i] for a in self.inputs], pick(self.targets, i)
        return [a[i] for a in self.inputs], pick(self.targets, i), pick(self.weights, i)


def load_dataset(spec: str) -> torch.utils.data.Dataset:
    """`package.module:attribute`: a Dataset (or a function returning one) whose items are
    `(inputs, target)` or `(inputs, target, sample_weight)` with inputs already in the torch
    layout (a tensor or a list of them); several outputs take a list of targets."""
    module_name, _, attribute = spec.partition(":")
    obj = getattr(importlib.import_module(module_name), attribute)
    return obj() if callable(obj) and not isinstance(obj, torch.utils.data.Dataset) else obj


def stack(values: list):
    """One batch of targets or sample weights: a tensor, or a list (one per output)."""
    if values[0] is None:
        return None
    if isinstance(values[0], (list, tuple)):
        return [torch.stack([torch.as_tensor(v[i]) for v in values]) for i in range(len(values[0]))]
    return torch.stack([torch.as_tensor(v) for v in values])


def to_device(value, device: torch.device):
    if value is None:
        return None
    return [v.to(device) for v in value] if isinstance(value, list) else value.to(device)


def as_batch(items: list):
    """Items `(inputs, target)` or `(inputs, target, sample_weight)` -> (inputs, y, weights)."""
    xs, ys = [item[0] for item in items], [item[1] for item in items]
    weights = [item[2] if len(item) > 2 else None for item in items]
    xs = [x if isinstance(x, (list, tuple)) else [x] for x in xs]
    inputs = [torch.stack([x[i] for x in xs]) for i in range(len(xs[0]))]
    return [x.float() if x.is_floating_point() else x for x in inputs], stack(ys), stack(weights)


def save_checkpoint(directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int,
                    shuffle: torch.Generator) -> None:
    """Weights, optimizer state and the shuffle generator's state as safetensors (no pickle): the
    optimizer's tensors under `<param name>.<slot>`, its hyper-parameters and counters as JSON
    metadata."""
    directory.mkdir(parents=True, exist_ok=True)
    save_file({{"state": shuffle.get_state()}}, str(directory / "shuffle.safetensors"))
    save_file({{k: v.detach().contiguous() for k, v in model.state_dict().items()}}, str(directory / "model.safetensors"))
    names = {{id(p): n for n, p in model.named_parameters()}}
    tensors = {{}}
    for param, state in optimizer.state.items():
        for slot, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{{names[id(param)]}}.{{slot}}"] = value.detach().contiguous()
    groups = [{{k: v for k, v in g.items() if k != "params"}} for g in optimizer.param_groups]
    meta = {{"param_groups": json.dumps(groups), "epoch": str(epoch)}}
    save_file(tensors, str(directory / "optimizer.safetensors"), metadata=meta)


def load_checkpoint(directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    shuffle: torch.Generator) -> int:
    """Restore weights, optimizer state and the shuffle order's generator (so that the next
    epoch draws what an uninterrupted run draws); returns the number of epochs already done."""
    model.load_state_dict(load_file(str(directory / "model.safetensors")), strict=True)
    shuffle.set_state(load_file(str(directory / "shuffle.safetensors"))["state"])
    return load_optimizer_state(directory / "optimizer.safetensors", model, optimizer)


def load_optimizer_state(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {{}}
        names = list(f.keys())
        tensors = {{k: f.get_tensor(k) for k in names}}
    for group, saved in zip(optimizer.param_groups, json.loads(meta.get("param_groups", "[]"))):
        group.update(saved)
    for name, param in model.named_parameters():
        slots = {{k[len(name) + 1 :]: v for k, v in tensors.items() if k.rsplit(".", 1)[0] == name}}
        if slots:
            optimizer.state[param] = slots
    return int(meta.get("epoch", 0))


def progress(step: int, total: int, logs: dict[str, float], done: bool = False) -> None:
    width = 30
    filled = width if done else int(width * step / max(total, 1))
    bar = "=" * max(filled - 1, 0) + (">" if not done and filled else "=" if done else "") + "." * (width - filled)
    text = " - ".join(f"{{k}}: {{v:.4f}}" for k, v in logs.items())
    print(f"\\r{{step}}/{{total}} [{{bar}}] - {{text}}", end="\\n" if done else "", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help=".npz with x (or x0, x1, ...), y (or y0, y1, ...) and optionally "
                        "sample_weight, in the Keras layout")
    source.add_argument("--dataset", help="module:attribute of a torch Dataset (items in the torch layout)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32, help="global batch size (split across torchrun processes)")
    parser.add_argument("--validation-split", type=float, default=0.0, help="last fraction of the data, as Keras")
    parser.add_argument("--no-shuffle", action="store_true", help="keep the data order (Keras: shuffle=False)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", default=str(Path(__file__).with_name("model.safetensors")))
    parser.add_argument("--optimizer-state", default=str(Path(__file__).with_name("optimizer.safetensors")),
                        help="optimizer state to start from (the Keras optimizer's, when it was saved)")
    parser.add_argument("--checkpoint-dir", default="checkpoints")
    parser.add_argument("--resume", action="store_true", help="continue from --checkpoint-dir/last")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()

    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    device = torch.device("cpu")
    rank, world = 0, 1
    if distributed:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        rank, world = dist.get_rank(), dist.get_world_size()
        if backend == "nccl":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    log = rank == 0 and not args.quiet

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from model import {class_name}

    model = {class_name}()
    model.load_state_dict(load_file(args.weights), strict=True)
    model.to(device)
    training = build_training(model)
    if distributed and training.sums_over_batch:
        raise SystemExit("train.py: a loss with reduction 'sum' or 'none' cannot be split across torchrun "
                         "processes yet; run one process")
    optimizer = training.optimizer
    start_epoch = 0
    generator = torch.Generator().manual_seed(args.seed)  # the shuffle order, checkpointed
    checkpoints = Path(args.checkpoint_dir)
    if args.resume and (checkpoints / "last").exists():
        start_epoch = load_checkpoint(checkpoints / "last", model, optimizer, generator)
    elif args.optimizer_state and Path(args.optimizer_state).exists():
        load_optimizer_state(Path(args.optimizer_state), model, optimizer)
    forward = model
    if distributed:
        # DDP would sum an Embedding's repeated-token gradient rows: train_step gathers those.
        nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
            model, [f"{{name}}.weight" for name in training.sparse_parameters])
        forward = nn.parallel.DistributedDataParallel(model)

    if args.data:
        inputs, targets, weights = load_arrays(args.data)
        dataset: torch.utils.data.Dataset = ArrayDataset(inputs, targets, weights)
    else:
        dataset = load_dataset(args.dataset)
    count = len(dataset)
    split_at = math.floor(count * (1.0 - args.validation_split))  # Keras: the last fraction validates
    train_idx, val_idx = list(range(split_at)), list(range(split_at, count))
    steps = -(-len(train_idx) // args.batch_size)

    history: dict[str, list[float]] = {{}}
    if args.resume and (checkpoints / "history.json").exists():
        history = json.loads((checkpoints / "history.json").read_text())
    for epoch in range(start_epoch, args.epochs):
        order = train_idx if args.no_shuffle else [train_idx[i] for i in torch.randperm(len(train_idx), generator=generator)]
        training.reset_metrics()
        loss_total, seen = 0.0, 0
        if log:
            print(f"Epoch {{epoch + 1}}/{{args.epochs}}")
        started = time.perf_counter()
        for step in range(steps):
            batch = order[step * args.batch_size : (step + 1) * args.batch_size]
            shard = batch[shard_start(len(batch), rank, world) : shard_start(len(batch), rank + 1, world)]
            # An empty shard (a last batch smaller than the process count) still takes part in
            # the gradient all-reduce: a stand-in sample with weight 0 (see Training.train_step).
            x, y, weights = as_batch([dataset[i] for i in shard or batch[:1]])
            x, y, weights = [t.to(device) for t in x], to_device(y, device), to_device(weights, device)
            loss = training.train_step(x, y, forward=forward, loss_scale=len(shard) * world / len(batch),
                                       sample_weight=weights)
            loss_total += float(loss) * len(shard)
            seen += len(shard)
            if log and not args.quiet:
                progress(step + 1, steps, {{"loss": loss_total / seen, **metric_values(training, False)}})
        logs = {{"loss": reduce_mean(loss_total, seen, distributed), **metric_values(training, distributed)}}
        if val_idx:
            logs.update(evaluate(training, dataset, val_idx, args.batch_size, device, distributed, rank, world))
        if log:
            progress(steps, steps, logs, done=True)
            print(f"{{steps}}/{{steps}} - {{time.perf_counter() - started:.0f}}s")
        for key, value in logs.items():
            history.setdefault(key, []).append(value)
        if rank == 0:
            (checkpoints / "history.json").parent.mkdir(parents=True, exist_ok=True)
            (checkpoints / "history.json").write_text(json.dumps(history, indent=1))
            save_checkpoint(checkpoints / f"epoch_{{epoch + 1}}", model, optimizer, epoch + 1, generator)
            save_checkpoint(checkpoints / "last", model, optimizer, epoch + 1, generator)
{finalize_ema}    if rank == 0:
        save_file({{k: v.detach().contiguous() for k, v in model.state_dict().items()}}, str(checkpoints / "final.safetensors"))
    if distributed:
        dist.barrier()
        dist.destroy_process_group()


def shard_start(size: int, rank: int, world: int) -> int:
    """Where process `rank`'s share of a batch of `size` starts: the first `size % world`
    processes take one sample more, so only the last ones can be left without any."""
    return rank * (size // world) + min(rank, size % world)


def reduce_mean(total: float, count: float, distributed: bool) -> float:
    """total / count over every process (a count is a sum of sample weights for weighted metrics)."""
    if distributed:
        pair = torch.tensor([total, float(count)], dtype=torch.float64)
        dist.all_reduce(pair)
        total, count = float(pair[0]), float(pair[1])
    return total / count if count > 0 else 0.0


def metric_values(training: Training, distributed: bool) -> dict[str, float]:
    values = {{}}
    for metric in training.reported_metrics:
        if distributed and hasattr(metric, "total"):
            values[metric.name] = reduce_mean(float(metric.total), float(metric.count), True)
        else:
            values[metric.name] = metric.result()
    return values


def evaluate(training: Training, dataset, indices: list[int], batch_size: int, device: torch.device,
             distributed: bool, rank: int, world: int) -> dict[str, float]:
    training.reset_metrics()
    mine = indices[rank::world]
    loss_total = 0.0
    for start in range(0, len(mine), batch_size):
        x, y, weights = as_batch([dataset[i] for i in mine[start : start + batch_size]])
        loss = training.test_step([t.to(device) for t in x], to_device(y, device), to_device(weights, device))
        loss_total += float(loss) * len(x[0])
    logs = {{"val_loss": reduce_mean(loss_total, len(mine), distributed)}}
    logs.update({{f"val_{{k}}": v for k, v in metric_values(training, distributed).items()}})
    return logs


if __name__ == "__main__":
    main()
'''

DOCSTRING = '''"""Train {class_name} in PyTorch as the Keras model {source} was compiled, by tf2torch.

    python train.py --data train.npz --epochs 5 --batch-size 32 --validation-split 0.1
    torchrun --nproc_per_node=2 train.py --data train.npz ...     (DistributedDataParallel)

Optimizer: {optimizer}
Loss:      {loss}
Metrics:   {metrics}

Data: an .npz with `x` (or `x0`, `x1`, ...) and `y` (or `y0`, `y1`, ... for several outputs,
in Keras' output order) in the Keras layout (images NHWC; they are permuted here), optionally
`sample_weight` (or `sample_weight0`, ... per output), or `--dataset module:attribute`.
Checkpoints (weights and optimizer state, safetensors) go to --checkpoint-dir after every
epoch; --resume continues from the last.
BatchNorm under torchrun uses each process's own batch statistics, as Keras'
MirroredStrategy does.
"""
'''


def render_train_script(spec: TrainingSpec, weight_map: WeightMap | None, module: torch.nn.Module, graph: Graph,
                        submodule_attrs: dict[str, Any], class_name: str, source_name: str) -> str:
    setup, needed = setup_source(spec, weight_map, module, graph, submodule_attrs)
    input_perms = [None if v.perm is None else tuple(v.perm) for v in graph.inputs]
    # Names in the summary come from the file (output names, a loss's name): escaped, so that
    # none of them can end the docstring.
    metrics = docstring_text(", ".join(m.render() for m in spec.metrics + spec.weighted_metrics) or "none")
    doc = DOCSTRING.format(
        class_name=class_name, source=docstring_text(source_name),
        optimizer=_wrapped(docstring_text(spec.optimizer.render(width=10**6))),
        loss=_loss_summary(spec),
        metrics=_wrapped(metrics),
    )
    imports = [
        "from __future__ import annotations",
        "",
        "import argparse",
        "import importlib",
        "import json",
        "import math",
        "import os",
        "import sys",
        "import time",
        "from collections.abc import Callable, Iterable",
        "from pathlib import Path",
        "",
        "import numpy as np",
        "import torch",
        "import torch.distributed as dist",
        "import torch.nn.functional as F",
        "from safetensors import safe_open",
        "from safetensors.torch import load_file, save_file",
        "from torch import nn",
    ]
    body = library_source(needed) + "\n\n\n" + setup + "\n"
    finalize_ema = ""
    if spec.optimizer.kwargs.get("use_ema"):  # as Keras' fit() ends: the weights become their averages
        finalize_ema = "    optimizer.finalize_variable_values()\n"
    main = MAIN_TEMPLATE.format(class_name=class_name, input_perms=repr(input_perms), finalize_ema=finalize_ema)
    code = body + textwrap.dedent(main)
    # isort's spacing: two blank lines before a def or class, one before other statements
    gap = "\n\n\n" if code.startswith(("def ", "class ", "@")) else "\n\n"
    return doc + "\n".join(_used_imports(imports, code)) + gap + code


def _used_imports(imports: list[str], code: str) -> list[str]:
    """The import lines (and names of `from` imports) that `code` uses."""
    used = {n.id for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Name)}
    kept = []
    for line in imports:
        if not line.startswith(("import ", "from ")) or line.startswith("from __future__"):
            kept.append(line)
            continue
        head, _, names = line.partition(" import ")
        bound = [n for n in names.split(", ") if n.split(" as ")[-1].split(".")[0] in used]
        if head.startswith("import "):  # `import a.b` binds `a`; `import a as b` binds `b`
            target = head[len("import "):]
            bound_name = target.split(" as ")[-1].split(".")[0]
            kept += [line] if bound_name in used else []
        elif bound:
            kept.append(f"{head} import {', '.join(bound)}")
    return [line for i, line in enumerate(kept) if line or (i and kept[i - 1])]


def _loss_summary(spec: TrainingSpec) -> str:
    if not spec.outputs:
        return _wrapped(docstring_text(spec.loss.render(width=10**6)))
    parts = [_wrapped(docstring_text(f"{o.name}: {'' if o.weight is None else f'{o.weight!r} * '}{o.loss.render(width=10**6)}"))
             for o in spec.outputs if o.loss is not None]
    return ("\n" + " " * 11).join(parts)


def _wrapped(text: str) -> str:
    """The whole text (the docstring shows the compile config untruncated), continuation lines
    aligned after the "Optimizer: " column."""
    pad = " " * 11
    return textwrap.fill(text, 99, initial_indent=pad, subsequent_indent=pad, break_long_words=False,
                         break_on_hyphens=False)[len(pad):]


__all__ = ["Obj", "library_source", "render_train_script", "training_code", "training_namespace"]
