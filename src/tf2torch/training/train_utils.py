"""What every train.py written by tf2torch shares: data, torchrun batches, epoch means,
progress, checkpoints. tf2torch writes this file unchanged next to train.py; it needs torch,
numpy and safetensors only."""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler, Subset


def parse_args(description: str | None) -> argparse.Namespace:
    here = Path(__file__).resolve().parent  # train.py, model.py and the weights sit together
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help=".npz with x (or x0, x1, ...), y and optionally sample_weight (Keras layout)")
    source.add_argument("--dataset", help="module:attribute of a torch Dataset (items in the torch layout)")
    parser.add_argument("--epochs", type=int, default=1, help="total epochs (also with --resume)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="global batch size (split across torchrun processes)")
    parser.add_argument("--validation-split", type=float, default=0.0, help="last fraction of the data, as Keras")
    parser.add_argument("--no-shuffle", action="store_true", help="keep the data order (Keras: shuffle=False)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", default=str(here / "model.safetensors"))
    parser.add_argument("--optimizer-state", default=str(here / "optimizer.safetensors"),
                        help="optimizer state to start from (the Keras optimizer's, when it was saved)")
    parser.add_argument("--checkpoint-dir", default="checkpoints")
    parser.add_argument("--resume", action="store_true", help="continue from --checkpoint-dir/last")
    parser.add_argument("--quiet", action="store_true")
    return parser.parse_args()


def init_distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device): one process, or torchrun's process group."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1, device
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return dist.get_rank(), dist.get_world_size(), device


def finish_distributed() -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


class ArrayDataset(Dataset):
    """An .npz in the Keras layout: `x` (or `x0`, `x1`, ...), `y` and optionally `sample_weight`;
    `input_perms` permutes each input to the torch layout (None: the same)."""

    def __init__(self, path: str, input_perms: list[tuple[int, ...] | None]) -> None:
        with np.load(path, allow_pickle=False) as data:
            names = ["x"] if "x" in data.files else [f"x{i}" for i in range(len(input_perms))]
            arrays = [data[k] if p is None else np.transpose(data[k], p) for k, p in zip(names, input_perms)]
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

    def __iter__(self) -> Iterator[list[int]]:
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


def data_loaders(args: argparse.Namespace, input_perms: list[tuple[int, ...] | None], generator: torch.Generator,
                 rank: int, world: int) -> tuple[ShardedBatches, DataLoader, DataLoader | None]:
    """(batch sampler, training loader, validation loader or None): Keras validates on the
    last --validation-split of the data, taken before shuffling."""
    dataset = ArrayDataset(args.data, input_perms) if args.data else user_dataset(args.dataset)
    split = math.floor(len(dataset) * (1.0 - args.validation_split))
    sampler = ShardedBatches(split, args.batch_size, not args.no_shuffle, generator, rank, world)
    train_loader = DataLoader(Subset(dataset, range(split)), batch_sampler=sampler)
    if split == len(dataset):
        return sampler, train_loader, None
    return sampler, train_loader, DataLoader(Subset(dataset, range(split + rank, len(dataset), world)),
                                             batch_size=args.batch_size)


def unpack(batch: list, device: torch.device) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor | None]:
    """A collated `(inputs, y[, sample_weight])` on `device`, float inputs as float32."""
    x, y, *sample_weight = batch
    x = x if isinstance(x, list) else [x]
    inputs = [t.to(device).float() if t.is_floating_point() else t.to(device) for t in x]
    return inputs, y.to(device), sample_weight[0].to(device) if sample_weight else None


class Averages:
    """Keras' epoch means: sums and counts by name, added up over processes under torchrun."""

    def __init__(self, names: list[str]) -> None:
        self.sums = dict.fromkeys(names, 0.0)
        self.counts = dict.fromkeys(names, 0.0)

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
    print(f"\r{step}/{total} [{bar}] - {text}", end="\n" if done else "", flush=True)


@torch.no_grad()
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
        param.grad = torch.sparse_coo_tensor(indices[None], values, param.grad.shape, is_coalesced=False)


def save_checkpoint(directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int,
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


def save_epoch(checkpoints: Path, model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int,
               shuffle: torch.Generator, history: dict[str, list[float]]) -> None:
    """`epoch_<n>/`, `last/` and history.json."""
    save_checkpoint(checkpoints / f"epoch_{epoch}", model, optimizer, epoch, shuffle)
    save_checkpoint(checkpoints / "last", model, optimizer, epoch, shuffle)
    (checkpoints / "history.json").write_text(json.dumps(history, indent=1))


def save_final(checkpoints: Path, model: nn.Module) -> None:
    checkpoints.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(weights, str(checkpoints / "final.safetensors"))


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
    return int(meta.get("epoch", 0))


def restore(args: argparse.Namespace, model: nn.Module, optimizer: torch.optim.Optimizer,
            shuffle: torch.Generator) -> tuple[int, dict[str, list[float]]]:
    """(epochs done, history): from --checkpoint-dir/last with --resume, else the optimizer
    state tf2torch wrote (Keras'), when there is one."""
    last = Path(args.checkpoint_dir) / "last"
    if args.resume and last.exists():
        model.load_state_dict(load_file(str(last / "model.safetensors")), strict=True)
        shuffle.set_state(load_file(str(last / "shuffle.safetensors"))["state"])
        history_file = last.parent / "history.json"
        history = json.loads(history_file.read_text()) if history_file.exists() else {}
        return load_optimizer_state(last / "optimizer.safetensors", model, optimizer), history
    if Path(args.optimizer_state).exists():
        load_optimizer_state(Path(args.optimizer_state), model, optimizer)
    return 0, {}
