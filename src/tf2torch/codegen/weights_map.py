"""weights_map.json: where each Keras layer and weight went in model.safetensors.

"layers" maps every Keras layer with weights to its torch module path (from codegen, always).
"weights" (written when the model is compiled, i.e. the training side traced its weights) is
read from the probe conversion of training.weight_map (every element of every Keras
variable traced to its place in the torch state dict), so nothing here is guessed:

    {"keras": "conv2_block1_1_conv/vars/0", "shape": [1, 1, 64, 64],
     "torch": "conv2.0.conv1.weight", "permute": [3, 2, 0, 1]}

`permute` means torch_tensor = numpy.transpose(keras_array, permute); an entry without it
whose "torch" is a list was split, merged or reordered (e.g. attention projections, the
Dense after a Flatten) and is listed with every tensor that holds part of it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tf2torch.codegen.emit import GeneratedModule
    from tf2torch.training.weight_map import TensorSource, WeightMap


def _transpose(source: TensorSource, offset: int, shape: tuple[int, ...]) -> list[int] | None:
    if source.keras_axes is None:
        return None
    perm = [int(a) for a in np.argsort(source.keras_axes)]
    expected = np.transpose(np.arange(offset, offset + int(np.prod(shape)), dtype=np.int64).reshape(shape), perm)
    if expected.size != source.index.size:
        return None
    # Size-1 axes may sit anywhere: compare the element order, then the shape up to them.
    same_order = np.array_equal(expected.reshape(-1), source.index.reshape(-1))
    return perm if same_order and expected.shape == source.index.shape else None


def weights_map_entries(weight_map: WeightMap) -> list[dict]:
    entries = []
    for i, variable in enumerate(weight_map.variables):
        entry: dict = {"keras": f"{variable.layer}/vars/{variable.index}", "shape": list(variable.shape)}
        exact = weight_map.tensor_of(i)
        if exact is not None:
            entry["torch"] = exact.name
            if not exact.same_layout:
                perm = _transpose(exact, variable.offset, variable.shape)
                if perm is None:
                    entry["torch"] = [exact.name]
                    entry["note"] = "elements reordered"
                else:
                    entry["permute"] = perm
        else:
            holders = [s.name for s in weight_map.tensors.values() if i in s.variables]
            entry["torch"] = holders
            entry["note"] = "split, merged or reordered" if holders else "not in the state dict (folded or computed)"
        entries.append(entry)
    return entries


def layer_paths(generated: GeneratedModule) -> dict[str, str]:
    """Keras layer -> torch module path of its (first) submodule with weights."""
    layers: dict[str, str] = {}
    for layer, sub in generated.builder.layer_submodules():
        if sub.state and layer not in layers:
            layers[layer] = generated.attr_path(sub.attr)
    return layers


def weights_map_json(generated: GeneratedModule, weight_map: WeightMap | None) -> bytes:
    content: dict = {"layers": layer_paths(generated)}
    if weight_map is not None:
        content["weights"] = weights_map_entries(weight_map)
    return (json.dumps(content, indent=1) + "\n").encode()
