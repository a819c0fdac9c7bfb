"""Import generated source as a live module: the API's module *is* the generated code."""

from __future__ import annotations

import hashlib
import linecache
import sys
from types import ModuleType

import numpy as np
import torch


def import_source(source: str) -> ModuleType:
    """Import `source` as a module without writing it anywhere: its text is registered with
    linecache under a pseudo file name, so tracebacks, inspect.getsource and torch.compile
    see it (no temporary directory to leave behind)."""
    digest = hashlib.sha1(source.encode()).hexdigest()[:12]
    name = f"tf2torch_generated_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    filename = f"<tf2torch-generated {name}.py>"
    # mtime None: linecache.checkcache keeps the entry (there is no file to compare with).
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    module = ModuleType(name)
    module.__file__ = filename
    sys.modules[name] = module
    # dont_inherit: the generated file runs as written, not under this module's `from __future__`
    # (string annotations would hide the `nn.Module` parameters optimize_for_inference looks for).
    exec(compile(source, filename, "exec", dont_inherit=True), module.__dict__)  # noqa: S102  (our own code)
    return module


def to_tensors(state: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)).clone() for k, v in state.items()}


def instantiate(source: str, class_name: str, state: dict[str, np.ndarray]) -> torch.nn.Module:
    module = import_source(source)
    model = getattr(module, class_name)()
    model.load_state_dict(to_tensors(state), strict=True)
    return model.eval()
