"""The fixed text of train_script.py's train.py, and its two Keras-exact optimizers.

Placeholders are `@name@` (the text is Python full of braces); the optimizers are written
with only the branches a compile config uses.
"""

from __future__ import annotations

IMPORTS = [
    "from __future__ import annotations",
    "",
    "import argparse",
    "import importlib",
    "import json",
    "import math",
    "import os",
    "import sys",
    "import time",
    "from collections.abc import Callable",
    "from pathlib import Path",
    "",
    "import numpy as np",
    "import torch",
    "import torch.distributed as dist",
    "import torch.nn.functional as F",
    "from safetensors import safe_open",
    "from safetensors.torch import load_file, save_file",
    "from torch import nn",
    "from torch.utils.data import DataLoader, Dataset, Sampler, Subset",
]


def fill(template: str, **values: str) -> str:
    for key, value in values.items():
        template = template.replace(f"@{key}@", value)
    return template


def defaults_lines(entries: list[str]) -> list[str]:
    """`super().__init__(params, {...})` with the optimizer's hyper-parameters and step count."""
    entries = [*entries, '"iterations": 0']
    flat = f"        super().__init__(params, {{{', '.join(entries)}}})"
    if len(flat) <= 120:
        return [flat]
    return ["        defaults = {", *[f"            {e}," for e in entries], "        }",
            "        super().__init__(params, defaults)"]


def signature(args: list[str]) -> list[str]:
    """`def __init__(self, params, ...)`, one argument a line when it is long."""
    flat = f"    def __init__(self, params, {', '.join(args)}) -> None:"
    if len(flat) <= 120:
        return [flat]
    return ["    def __init__(", "        self,", "        params,", *[f"        {a}," for a in args], "    ) -> None:"]


def keras_adam_source(ctor: str, weight_decay: bool, amsgrad: bool, sparse: bool, schedule: bool) -> str:
    """keras.optimizers.Adam / AdamW with only the options in use."""
    name = ctor.removeprefix("Keras")
    wd_default = "0.004" if ctor == "KerasAdamW" else "None"
    lr_arg = "learning_rate: Callable[[int], float]" if schedule else "learning_rate=0.001"
    args = [lr_arg, "beta_1=0.9", "beta_2=0.999", "epsilon=1e-7"]
    hyper = ['"beta_1": beta_1', '"beta_2": beta_2', '"epsilon": epsilon']
    if weight_decay:
        args.append(f"weight_decay={wd_default}")
        hyper.append('"weight_decay": weight_decay')
    if amsgrad:
        args.append("amsgrad=False")
        hyper.append('"amsgrad": amsgrad')
    init = ["        self.schedule = learning_rate  # called with the number of steps taken, as Keras does",
            *defaults_lines(hyper)] if schedule else defaults_lines(['"lr": learning_rate', *hyper])
    lr = "self.schedule(step)" if schedule else 'group["lr"]'
    slots = '"momentum", "velocity"' + (', "velocity_hat"' if amsgrad else "")
    grads = ["                g, g_squared = p.grad, p.grad * p.grad"]
    if sparse:
        grads = [
            "                if p.grad.is_sparse:  # an Embedding: each token occurrence's row squared, then summed",
            "                    rows, index = p.grad._values(), p.grad._indices()[0]",
            "                    g = torch.zeros_like(p).index_add_(0, index, rows)",
            "                    g_squared = torch.zeros_like(p).index_add_(0, index, rows * rows)",
            "                else:",
            "                    g, g_squared = p.grad, p.grad * p.grad",
        ]
    update = [
        '                m.add_((g - m) * (1 - group["beta_1"]))',
        '                v.add_((g_squared - v) * (1 - group["beta_2"]))',
    ]
    if amsgrad:
        update += ['                v = state["velocity_hat"].copy_(torch.maximum(state["velocity_hat"], v))']
    decay = ['                p.sub_(p * torch.tensor(group["weight_decay"]) * lr)'] if weight_decay else []
    if weight_decay and ctor == "KerasAdam":
        decay = ['                if group["weight_decay"]:', "    " + decay[0]]
    wd_doc = "\n    Weight decay is decoupled: `p -= p * weight_decay * lr` before the update." if weight_decay else ""
    return "\n".join([
        f"class Keras{name}(torch.optim.Optimizer):",
        f'    """keras.optimizers.{name}: torch.optim.{name} adds epsilon to the bias-corrected root of v;',
        "    Keras folds the bias correction into the step size and adds epsilon to sqrt(v), in",
        f'    float32.{wd_doc}"""',
        "",
        *signature(args),
        *init,
        "",
        "    @torch.no_grad()",
        "    def step(self) -> None:",
        "        for group in self.param_groups:",
        '            step = group["iterations"]',
        f"            lr = torch.tensor({lr}, dtype=torch.float32)",
        "            t = torch.tensor(step + 1.0)",
        '            beta_1, beta_2 = torch.tensor(group["beta_1"]), torch.tensor(group["beta_2"])',
        "            alpha = lr * torch.sqrt(1 - beta_2**t) / (1 - beta_1**t)",
        '            for p in group["params"]:',
        "                if p.grad is None:",
        "                    continue",
        "                state = self.state[p]",
        "                if not state:",
        f"                    state.update({{slot: torch.zeros_like(p) for slot in ({slots})}})",
        '                m, v = state["momentum"], state["velocity"]',
        *grads,
        *decay,
        *update,
        '                p.sub_((m * alpha) / (torch.sqrt(v) + group["epsilon"]))',
        '            group["iterations"] = step + 1',
    ])


def keras_sgd_source(momentum: bool, nesterov: bool, weight_decay: bool, sparse: bool, schedule: bool) -> str:
    """keras.optimizers.SGD with only the options in use (torch.optim.SGD keeps the learning
    rate out of its momentum buffer: the same steps only at a constant learning rate)."""
    lr_arg = "learning_rate: Callable[[int], float]" if schedule else "learning_rate=0.01"
    args, hyper = [lr_arg], []
    if momentum:
        args += ["momentum=0.0", "nesterov=False"]
        hyper += ['"momentum": momentum', '"nesterov": nesterov']
    if weight_decay:
        args.append("weight_decay=None")
        hyper.append('"weight_decay": weight_decay')
    init = (["        self.schedule = learning_rate  # called with the number of steps taken, as Keras does"]
            if schedule else []) + defaults_lines([*([] if schedule else ['"lr": learning_rate']), *hyper])
    grad = ["                g = p.grad"]
    if sparse:
        grad = ["                g = p.grad.to_dense() if p.grad.is_sparse else p.grad  # an Embedding's token rows"]
    body = ["                p.sub_(g * lr)"]
    if momentum:
        step_expr = 'm * mu - g * lr' if nesterov else "m"
        body = [
            '                mu = torch.tensor(group["momentum"])',
            '                m = self.state[p].setdefault("momentum", torch.zeros_like(p))',
            "                m.copy_(m * mu - g * lr)",
            f"                p.add_({step_expr})",
        ]
        if nesterov:
            body = body[:-1] + ['                p.add_(m * mu - g * lr if group["nesterov"] else m)']
    decay = ['                p.sub_(p * torch.tensor(group["weight_decay"]) * lr)'] if weight_decay else []
    lr = "self.schedule(step)" if schedule else 'group["lr"]'
    return "\n".join([
        "class KerasSGD(torch.optim.Optimizer):",
        '    """keras.optimizers.SGD: `m = momentum * m - lr * g; p += m`. torch.optim.SGD keeps lr out of',
        '    its momentum buffer, which takes the same steps only at a constant learning rate."""',
        "",
        *signature(args),
        *init,
        "",
        "    @torch.no_grad()",
        "    def step(self) -> None:",
        "        for group in self.param_groups:",
        '            step = group["iterations"]',
        f"            lr = torch.tensor({lr}, dtype=torch.float32)",
        '            for p in group["params"]:',
        "                if p.grad is None:",
        "                    continue",
        *grad,
        *decay,
        *body,
        '            group["iterations"] = step + 1',
    ])


GATHER_EMBEDDING_GRADIENTS = '''@torch.no_grad()
def gather_embedding_gradients(model: nn.Module) -> None:
    """Under torchrun: the token rows of every process's sparse Embedding gradient, concatenated
    in rank order (the global batch's) and averaged over processes as DDP averages the rest."""
    world = dist.get_world_size()
    for module in model.modules():
        param = module.weight if isinstance(module, nn.Embedding) else None
        if param is None or param.grad is None:
            continue
        if not param.grad.is_sparse:  # made dense by a weight penalty
            dist.all_reduce(param.grad)
            param.grad.div_(world)
            continue
        indices, values = param.grad._indices()[0], param.grad._values()
        counts = [torch.zeros(1, dtype=torch.long) for _ in range(world)]
        dist.all_gather(counts, torch.tensor([len(indices)]))
        size = max(int(c) for c in counts)
        padded_indices = torch.cat([indices, indices.new_zeros(size - len(indices))])
        padded_values = torch.cat([values, values.new_zeros((size - len(values), *values.shape[1:]))])
        all_indices = [torch.empty_like(padded_indices) for _ in range(world)]
        all_values = [torch.empty_like(padded_values) for _ in range(world)]
        dist.all_gather(all_indices, padded_indices)
        dist.all_gather(all_values, padded_values)
        indices = torch.cat([i[: int(c)] for i, c in zip(all_indices, counts)])
        values = torch.cat([v[: int(c)] for v, c in zip(all_values, counts)]) / world
        param.grad = torch.sparse_coo_tensor(indices[None], values, param.grad.shape, is_coalesced=False)'''


CHECKPOINTS = '''def save_checkpoint(directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int,
                    shuffle: torch.Generator) -> None:
    """Weights, optimizer state (tensors as `<param name>.<slot>`, hyper-parameters and counters as
    JSON metadata) and the shuffle generator, all safetensors."""
    directory.mkdir(parents=True, exist_ok=True)
    save_file({"state": shuffle.get_state()}, str(directory / "shuffle.safetensors"))
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(directory / "model.safetensors"))
    names = {id(p): n for n, p in model.named_parameters()}
    tensors = {f"{names[id(p)]}.{slot}": value.detach().contiguous()
               for p, state in optimizer.state.items() for slot, value in state.items() if torch.is_tensor(value)}
    groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    save_file(tensors, str(directory / "optimizer.safetensors"),
              metadata={"param_groups": json.dumps(groups), "epoch": str(epoch)})


def load_optimizer_state(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Restore what save_checkpoint (or tf2torch, from Keras) wrote; returns the epochs done."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        names = list(f.keys())
        tensors = {k: f.get_tensor(k) for k in names}
    for group, saved in zip(optimizer.param_groups, json.loads(meta.get("param_groups", "[]"))):
        group.update(saved)
    for name, param in model.named_parameters():
        slots = {k[len(name) + 1 :]: v for k, v in tensors.items() if k.rsplit(".", 1)[0] == name}
        if slots:
            optimizer.state[param] = slots
    return int(meta.get("epoch", 0))'''


DATA = '''INPUT_PERMS = @input_perms@  # Keras layout -> torch layout of each model input (None: the same)


class ArrayDataset(Dataset):
    """An .npz in the Keras layout: `x` (or `x0`, `x1`, ...), `y` and optionally `sample_weight`."""

    def __init__(self, path: str) -> None:
        with np.load(path, allow_pickle=False) as data:
            names = ["x"] if "x" in data.files else [f"x{i}" for i in range(len(INPUT_PERMS))]
            arrays = [data[k] if p is None else np.transpose(data[k], p) for k, p in zip(names, INPUT_PERMS)]
            self.inputs = [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]
            self.y = torch.from_numpy(data["y"])
            self.sample_weight = torch.from_numpy(data["sample_weight"]) if "sample_weight" in data.files else None

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple:
        item = ([x[i] for x in self.inputs], self.y[i])
        return item if self.sample_weight is None else (*item, self.sample_weight[i])


def user_dataset(spec: str) -> Dataset:
    """--dataset package.module:attribute: a Dataset, or a function returning one."""
    module, _, attribute = spec.partition(":")
    found = getattr(importlib.import_module(module), attribute)
    return found if isinstance(found, Dataset) else found()


class ShardedBatches(Sampler):
    """Keras' batches (shuffled each epoch by `generator` unless `shuffle` is off), each split
    across torchrun processes: a contiguous share each, the first `size % world` processes one
    sample more. A process left without a sample gets a stand-in whose share is 0."""

    def __init__(self, size: int, batch_size: int, shuffle: bool, generator: torch.Generator, rank: int = 0,
                 world: int = 1) -> None:
        self.size, self.batch_size, self.shuffle, self.generator = size, batch_size, shuffle, generator
        self.rank, self.world = rank, world

    def __len__(self) -> int:
        return math.ceil(self.size / self.batch_size)

    def bounds(self, size: int) -> tuple[int, int]:
        start = self.rank * (size // self.world) + min(self.rank, size % self.world)
        return start, start + size // self.world + (self.rank < size % self.world)

    def __iter__(self):
        order = torch.randperm(self.size, generator=self.generator).tolist() if self.shuffle else range(self.size)
        for start in range(0, self.size, self.batch_size):
            batch = list(order[start : start + self.batch_size])
            first, end = self.bounds(len(batch))
            yield batch[first:end] or batch[:1]

    def share(self, step: int) -> float:
        """This process's part of batch `step` times the number of processes (0: a stand-in)."""
        size = min(self.batch_size, self.size - step * self.batch_size)
        first, end = self.bounds(size)
        return (end - first) * self.world / size


def unpack(batch: list, device: torch.device) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor | None]:
    """A collated `(inputs, y[, sample_weight])` on `device`, float inputs as float32."""
    x, y, *sample_weight = batch
    inputs = [t.to(device).float() if t.is_floating_point() else t.to(device) for t in (x if isinstance(x, list) else [x])]
    return inputs, y.to(device), sample_weight[0].to(device) if sample_weight else None


class Averages:
    """Keras' epoch means: sums and counts by name, added up over processes under torchrun."""

    def __init__(self) -> None:
        self.sums = dict.fromkeys(@names@, 0.0)
        self.counts = dict.fromkeys(@names@, 0.0)

    def add(self, name: str, total: float, count: float) -> None:
        self.sums[name] += total
        self.counts[name] += count

    def result(self, prefix: str = "", local: bool = False) -> dict[str, float]:
        sums = torch.tensor(list(self.sums.values()), dtype=torch.float64)
        counts = torch.tensor(list(self.counts.values()), dtype=torch.float64)
        if dist.is_initialized() and not local:
            dist.all_reduce(sums)
            dist.all_reduce(counts)
        return {prefix + k: float(s / c) if c > 0 else 0.0 for k, s, c in zip(self.sums, sums, counts)}


def progress(step: int, total: int, logs: dict[str, float], done: bool = False) -> None:
    filled = 30 if done else 30 * step // total
    bar = "=" * max(filled - (not done), 0) + (">" if filled and not done else "") + "." * (30 - filled)
    text = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
    print(f"\\r{step}/{total} [{bar}] - {text}", end="\\n" if done else "", flush=True)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device) -> dict[str, float]:
    model.eval()
    averages = Averages()
    for batch in loader:
        inputs, y, sample_weight = unpack(batch, device)
        y_pred = @eval_output@
        record(averages, compute_loss(y_pred, y, sample_weight)@penalty@, y_pred, y)
    return averages.result(prefix="val_")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help=".npz with x (or x0, x1, ...), y and optionally sample_weight (Keras layout)")
    source.add_argument("--dataset", help="module:attribute of a torch Dataset (items in the torch layout)")
    parser.add_argument("--epochs", type=int, default=1, help="total epochs (also with --resume)")
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

    rank, world = 0, 1
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        if torch.cuda.is_available():
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
    log = rank == 0 and not args.quiet

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from model import @class_name@

    model = @class_name@()
    model.load_state_dict(load_file(args.weights), strict=True)
    model.to(device)
@sparse_setup@    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = @optimizer@
    generator = torch.Generator().manual_seed(args.seed)  # the shuffle order; checkpointed
    checkpoints = Path(args.checkpoint_dir)
    start_epoch, history = 0, {}
    if args.resume and (checkpoints / "last").exists():
        model.load_state_dict(load_file(str(checkpoints / "last" / "model.safetensors")), strict=True)
        generator.set_state(load_file(str(checkpoints / "last" / "shuffle.safetensors"))["state"])
        start_epoch = load_optimizer_state(checkpoints / "last" / "optimizer.safetensors", model, optimizer)
        if (checkpoints / "history.json").exists():
            history = json.loads((checkpoints / "history.json").read_text())
    elif Path(args.optimizer_state).exists():
        load_optimizer_state(Path(args.optimizer_state), model, optimizer)
    forward = model
    if dist.is_initialized():  # BatchNorm: each process's own batch statistics, as MirroredStrategy
@ddp_ignore@        forward = nn.parallel.DistributedDataParallel(model)

    dataset = ArrayDataset(args.data) if args.data else user_dataset(args.dataset)
    split = math.floor(len(dataset) * (1.0 - args.validation_split))  # Keras validates on the last part
    sampler = ShardedBatches(split, args.batch_size, not args.no_shuffle, generator, rank, world)
    train_loader = DataLoader(Subset(dataset, range(split)), batch_sampler=sampler)
    val_loader = DataLoader(Subset(dataset, range(split + rank, len(dataset), world)), batch_size=args.batch_size)

    for epoch in range(start_epoch, args.epochs):
        if log:
            print(f"Epoch {epoch + 1}/{args.epochs}")
        started, averages = time.perf_counter(), Averages()
        for step, batch in enumerate(train_loader):
            inputs, y, sample_weight = unpack(batch, device)
            share = sampler.share(step)
            model.train(share > 0)  # a stand-in sample leaves BatchNorm's statistics alone
            optimizer.zero_grad(set_to_none=True)
@step@
            if share > 0:
                record(averages, loss.detach(), y_pred.detach(), y)
            if log:
                progress(step + 1, len(sampler), averages.result(local=True))
        logs = averages.result()
        if split < len(dataset):
            logs.update(evaluate(model, val_loader, device))
        if log:
            progress(len(sampler), len(sampler), logs, done=True)
            print(f"{len(sampler)}/{len(sampler)} - {time.perf_counter() - started:.0f}s")
        for key, value in logs.items():
            history.setdefault(key, []).append(value)
        if rank == 0:
            save_checkpoint(checkpoints / f"epoch_{epoch + 1}", model, optimizer, epoch + 1, generator)
            save_checkpoint(checkpoints / "last", model, optimizer, epoch + 1, generator)
            (checkpoints / "history.json").write_text(json.dumps(history, indent=1))
    if rank == 0:
        checkpoints.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(checkpoints / "final.safetensors"))
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
'''
