"""Import generated source as a live module: the API's module *is* the generated code."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

_GENERATED_DIR = Path(tempfile.mkdtemp(prefix="tf2torch-generated-"))


def import_source(source: str) -> ModuleType:
    """Write `source` to a private file and import it (so tracebacks and torch.compile see it)."""
    digest = hashlib.sha1(source.encode()).hexdigest()[:12]
    name = f"tf2torch_generated_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    path = _GENERATED_DIR / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def to_tensors(state: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)).clone() for k, v in state.items()}


def instantiate(source: str, class_name: str, state: dict[str, np.ndarray]) -> torch.nn.Module:
    module = import_source(source)
    model = getattr(module, class_name)()
    model.load_state_dict(to_tensors(state), strict=True)
    return model.eval()
