"""Find the repeated blocks of a flat forward(): one class per block kind.

Converters write one flat module (every submodule an attribute, one forward()). Keras names
the layers of a repeated block after the block (`conv2_block1_1_conv`, `block_3_expand`,
`block2a_se_reduce`, `..._stage_2_block_1_depthwise_conv`): the name proposes the block,
and a structural hash of its statements and constructors decides which blocks are the same
kind. Only numbers in the constructors may differ between blocks of one kind (channels,
stride); they become the block class's constructor parameters.

    x = self.conv2_block2_1_conv(conv2_block1_out)       class Block(nn.Module):
    x = self.conv2_block2_1_bn(x)                 ->         ... self.conv1 = nn.Conv2d(in_channels, ...)
    ...                                                  x = self.conv2_block2(conv2_block1_out)

A block is extracted only when it is safe to: its statements are contiguous, it owns the
submodules it calls (no other statement calls them), and it uses nothing else from `self`.
"""

from __future__ import annotations

import ast
import re
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache

from tf2torch.codegen.code_names import free_names, number_callers, numbers, rename, replace_numbers, self_attributes
from tf2torch.codegen.naming import MODULE_RESERVED, NameScope, identifier
from tf2torch.codegen.program import ModuleBuilder, Statement, Submodule
from tf2torch.codegen.structural_blocks import structural_instances, tidy_local_names
from tf2torch.ir import Graph, SourceRef

BLOCK_WORDS = ("block", "layer", "stage", "unit", "cell")
# `conv2_block1_...`, `block_3_...`, `block2a_...`, `..._stage_0_block_2_...`: the last block
# word followed by an index; what precedes the index is the stage.
_BLOCK_NAME = re.compile(r"^(?P<stage>.*(?:" + "|".join(BLOCK_WORDS) + r")_?)(?P<index>\d+[a-z]?)(?=[_/])")
# Constructor keywords whose absence means a known default (torch.nn.ConvNd).
_CONV = re.compile(r"^(nn\.Conv(Transpose)?|SameConv)[123]d$")
_CONV_DEFAULTS = {"stride": "1", "padding": "0", "dilation": "1", "groups": "1"}
# Constructor numbers that are never a channel count's base.
_GEOMETRY = frozenset({"stride", "kernel_size", "padding", "dilation", "groups"})

_POSITIONAL_NAMES = {
    "Conv": ("in_channels", "out_channels", "kernel_size"),
    "Linear": ("in_features", "out_features"),
    "BatchNorm": ("num_features",),
    "InstanceNorm": ("num_features",),
    "LayerNorm": ("normalized_shape",),
    "GroupNorm": ("num_groups", "num_channels"),
    "Dropout": ("p",),
}


# Without a block word: a numbered prefix followed by the layer's own name
# (`expanded_conv_3_depthwise` in MobileNetV3).
_NUMBERED_PREFIX = re.compile(r"^(?P<stage>[A-Za-z][A-Za-z_]*?_)(?P<index>\d+)(?=_[A-Za-z])")


def block_of(layer: str) -> tuple[str, str] | None:
    """(block id, stage) proposed by a Keras layer name, or None."""
    match = _BLOCK_NAME.match(layer) or _NUMBERED_PREFIX.match(layer)
    if match is None:
        return None
    return match.group("stage") + match.group("index"), match.group("stage")


def local_name(name: str, block: str) -> str:
    """A layer or variable name inside its block: the words it shares with the block id are
    dropped. `conv2_block1_1_conv` in block `conv2_block1` -> `conv1` (torchvision's names);
    `block_3_expand_BN` in `block_3` -> `expand_BN`; `stem_downsampling_conv_1` in
    `stem_downsampling_block_1` -> `conv`; a name sharing nothing stays."""
    words, block_words = re.split(r"[_/]", name), re.split(r"[_/]", block)
    shared = 0
    while shared < min(len(words), len(block_words)) and words[shared] == block_words[shared]:
        shared += 1
    rest = [w for w in words[shared:] if w]
    if shared == 0 or not rest:
        return name
    if len(rest) > len(block_words) and rest[:len(block_words)] == block_words:
        rest = rest[len(block_words):]  # a nested model's layer named after it: `stem/stem_conv` -> `conv`
    if len(rest) > 1 and rest[-1] == block_words[-1]:
        rest = rest[:-1]  # the block's own index repeated at the end
    if len(rest) > 2 and block_words[-1].isdigit() and rest[1] == block_words[-1]:
        rest = [rest[0]] + rest[2:]  # or after the layer's kind: `conv_dw_3_bn` in `conv_3` -> `dw_bn`
    if len(rest) > 1 and rest[0].isdigit() and not rest[1][0].isdigit():
        rest = [rest[1] + rest[0]] + rest[2:]
    return identifier("_".join(rest))


@dataclass
class CtorSlot:
    """One number in a submodule constructor (a positional argument or a keyword)."""

    key: int | str
    text: str | None  # None: a keyword left out (its default)


@dataclass
class Ctor:
    func: str
    positional: list[str]
    keywords: list[tuple[str, str]]
    numbers: dict[int | str, str]  # slot -> literal text; a left-out default keyword included
    shape: tuple  # everything but the numbers: equal shapes make the same kind of submodule


@lru_cache(maxsize=4096)  # blocks repeat the same constructors; a Ctor is never changed
def parse_ctor(text: str) -> Ctor | None:
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError:
        return None
    if not isinstance(tree, ast.Call) or any(isinstance(a, ast.Starred) for a in tree.args) or any(
            k.arg is None for k in tree.keywords):
        return None
    func = ast.get_source_segment(text, tree.func) or ""
    positional = [ast.get_source_segment(text, a) or "" for a in tree.args]
    keywords = [(k.arg, ast.get_source_segment(text, k.value) or "") for k in tree.keywords]
    numbers: dict[int | str, str] = {}
    shape: list = [func]
    for i, (arg, arg_text) in enumerate(zip(tree.args, positional)):
        if _is_number(arg):
            numbers[i] = arg_text
            shape.append("#")
        else:
            shape.append(arg_text)
    defaults = _CONV_DEFAULTS if _CONV.match(func) else {}
    for key, default in defaults.items():
        numbers[key] = default
    for k, (key, value_text) in zip(tree.keywords, keywords):
        if _is_number(k.value):
            numbers[key] = value_text
            if key not in defaults:
                shape.append(f"{key}=#")
        else:
            numbers.pop(key, None)
            shape.append(f"{key}={value_text}")
    return Ctor(func, positional, keywords, numbers, tuple(shape))


def as_same_conv(ctor: Ctor) -> Ctor:
    """`nn.Conv2d(..., padding=1)` with stride 1 as `SameConv2d(...)`: TF's 'same' padding
    for every input size, the same convolution. In a model with stride-2 SameConvs, their
    blocks and the stride-1 blocks then share one class (`stride` a constructor argument)."""
    match = re.fullmatch(r"nn\.Conv([123])d", ctor.func)
    if match is None or len(ctor.positional) < 2 or any(k not in ("kernel_size", "padding", "groups", "bias", "dilation")
                                                          for k, _ in ctor.keywords):
        return ctor
    try:
        n = int(match.group(1))
        values = {k: ast.literal_eval(v) for k, v in ctor.keywords if k != "bias"}
        kernel = ast.literal_eval(ctor.positional[2]) if len(ctor.positional) > 2 else values.pop("kernel_size")
    except (ValueError, SyntaxError, KeyError):
        return ctor
    dims = [_per_dim(kernel, n), _per_dim(values.get("dilation", 1), n), _per_dim(values.get("padding", 0), n)]
    if any(not isinstance(v, int) for dim in dims for v in dim):
        return ctor
    if any((k - 1) * d != 2 * p for k, d, p in zip(*dims)) or not any(dims[2]):
        return ctor  # not 'same', or a 1x1 conv (the same class either way)
    parts = ctor.positional + [f"{k}={v}" for k, v in ctor.keywords if k != "padding"]
    return parse_ctor(f"SameConv{n}d({', '.join(parts)})") or ctor


def _per_dim(value: object, n: int) -> tuple:
    return value if isinstance(value, tuple) else (value,) * n


def _is_number(node: ast.AST) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
    if isinstance(node, ast.Tuple):
        return bool(node.elts) and all(_is_number(e) for e in node.elts)
    return isinstance(node, ast.Constant) and type(node.value) in (int, float)


@dataclass
class OptionalPart:
    """Statements of a block that only some blocks of its kind have (ResNet's projection
    shortcut, EfficientNet's expansion conv): they compute `value` from the block input
    `source`, which the blocks without them use in its place."""

    statements: range  # positions in the template's statements
    subs: list[int]  # positions in the template's submodules
    value: str  # flat variable names in the template
    source: str
    feeds_add: bool  # its value is added (a shortcut)


@dataclass
class Instance:
    """One occurrence of a block in the flat forward(): statements [start, stop)."""

    block: str
    stage: str
    start: int
    stop: int
    subs: list[Submodule]
    inputs: list[str]  # flat variable names, in order of first use
    outputs: list[str]
    writes: set[str] = field(default_factory=set)
    local_attrs: dict[str, str] = field(default_factory=dict)
    local_vars: dict[str, str] = field(default_factory=dict)
    ctors: list[Ctor] = field(default_factory=list)
    numbers: list[list[str]] = field(default_factory=list)  # number literals per statement
    expressions: list[str] = field(default_factory=list)  # the statements' right-hand sides
    signature: tuple = ()
    path: str = ""  # attribute path in the structured module: "conv2.0" or "conv2_block1"
    kind: BlockKind | None = None
    source_class: str = ""  # the Keras class of a block the source nests (SourceRef.scope)
    # The signature without a last `x + inputs` (a block whose residual add is optional).
    without_residual: tuple | None = None
    residual: bool = False  # in a kind whose residual add is optional: this block adds it
    optional: OptionalPart | None = None  # of a template whose kind has an optional part
    has_optional: bool = True  # False: this block lacks its kind's optional part


@dataclass
class Parameter:
    name: str
    values: tuple[str, ...]  # per instance of the kind
    slots: list[tuple[int, int | str]]  # (submodule position, constructor slot)
    default: str | None = None  # a left-out ConvNd keyword's default
    annotation: str = ""
    flag: bool = False  # a switch forward() reads (the optional residual add)
    switch: bool = False  # whether a block has its kind's optional part (constructor only)
    base: Parameter | None = None  # derived: `name` is `factor * base.name` (`4 * out_channels`)
    factor: int = 1

    @property
    def derived(self) -> bool:
        return self.base is not None

    @property
    def read(self) -> str:
        """How forward() reads it."""
        return f"{self.factor} * self.{self.base.name}" if self.base is not None else f"self.{self.name}"
    # (statement position in the block, n-th number in it): forward() reads self.<name>.
    uses: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class BlockKind:
    class_name: str
    instances: list[Instance]
    parameters: list[Parameter]

    @property
    def residual(self) -> Parameter | None:
        """The flag of a kind whose last statement (the residual add) only some blocks run."""
        return next((p for p in self.parameters if p.flag), None)

    @property
    def template(self) -> Instance:
        return self.instances[0]

    @property
    def optional(self) -> OptionalPart | None:
        return self.template.optional

    @property
    def switch(self) -> Parameter | None:
        return next((p for p in self.parameters if p.switch), None)

    def arguments(self, instance: Instance) -> str:
        args = []
        index = next(n for n, i in enumerate(self.instances) if i is instance)
        for p in self.parameters:
            if p.derived:
                continue
            value = p.values[index]
            if p.default is None:
                args.append(value)
            elif value != p.default:
                args.append(f"{p.name}={value}")
        return f"{self.class_name}({', '.join(args)})"

    def statement(self, position: int, expr: str) -> str:
        """The template's `position`-th statement `expr` reading the parameters it depends on."""
        return replace_numbers(expr, {n: p.read for p in self.parameters for k, n in p.uses if k == position})

    @property
    def stored(self) -> list[Parameter]:
        """Parameters forward() reads (kept as attributes)."""
        read = {id(p.base) for p in self.parameters if p.uses and p.base is not None}
        return [p for p in self.parameters if (p.uses or p.flag or id(p) in read) and not p.derived]

    def ctor(self, position: int) -> str:
        """The template's constructor of its `position`-th submodule, with the parameters."""
        ctor = self.template.ctors[position]
        by_slot = {slot: p.name for p in self.parameters for sub, slot in p.slots if sub == position}
        parts = [by_slot.get(i, text) for i, text in enumerate(ctor.positional)]
        used = {key for key, _ in ctor.keywords}
        # Left-out keywords a parameter sets (`stride=stride`) go after kernel_size, where torch has them.
        added = [f"{key}={name}" for key, name in by_slot.items() if isinstance(key, str) and key not in used]
        for key, text in ctor.keywords:
            parts.append(f"{key}={by_slot.get(key, text)}")
            if key == "kernel_size":
                parts += added
                added = []
        return f"{ctor.func}({', '.join(parts + added)})"


@dataclass
class Sequence:
    """Blocks that chain: each one's only output is the next one's first input; the other
    inputs (a padding mask) are the same for all. Without those an nn.Sequential, with them an
    nn.ModuleList called in a loop."""

    attr: str
    instances: list[Instance]

    @property
    def shared_inputs(self) -> list[str]:
        return self.instances[0].inputs[1:]


@dataclass
class Structure:
    kinds: list[BlockKind]
    instances: list[Instance]  # extracted, in forward() order
    sequences: list[Sequence]
    # Kinds that are nested models with block classes of their own, by class name (nested_blocks).
    nested: dict = field(default_factory=dict)

    def key_map(self, builder: ModuleBuilder) -> dict[str, str]:
        """Flat state-dict key prefix (`conv2_block1_1_conv`) -> structured (`conv2.0.conv1`)."""
        moved = {}
        for instance in self.instances:
            assert instance.kind is not None
            template = instance.kind.template  # whose attribute names the class uses
            for position, named in enumerate(template.subs):
                own = _own_position(instance, template, position, "subs")
                if own is not None:
                    moved[instance.subs[own].attr] = f"{instance.path}.{template.local_attrs[named.attr]}"
        return {sub.attr: moved.get(sub.attr, sub.attr) for sub in builder.submodules}


def find_blocks(graph: Graph, builder: ModuleBuilder, reserved: set[str]) -> Structure:
    """The blocks of `builder`'s forward(): the source's own (nested models, keras_hub layers:
    SourceRef.scope), and those that repeat (proposed by the Keras layer names). `reserved` are
    module-level names."""
    statements = builder.statements
    variables = _variables(graph, builder)
    attr_uses: dict[str, int] = {}
    for st in statements:
        for attr in self_attributes(st.expr):
            attr_uses[attr] = attr_uses.get(attr, 0) + 1
    pinned = {a for method in builder.methods.values() for a in self_attributes(method)}
    subs_by_attr = {sub.attr: sub for sub in builder.submodules}
    returned = [builder.var(v) for v in graph.outputs]
    source_classes: dict[str, str] = {}
    same_convs = any(name.startswith("SameConv") for name in builder.helpers)

    def source_block(ref: SourceRef) -> tuple[str, str] | None:
        if not ref.scope:
            return None
        name, class_name = ref.scope[0]
        source_classes[name] = class_name
        return name, re.sub(r"_?\d+$", "", name) or name

    def instances_of(propose: Callable[[SourceRef], tuple[str, str] | None]) -> list[Instance]:
        found = []
        for block, stage, start, stop in _candidate_runs(statements, variables, propose, returned):
            if stop - start < 2:
                continue
            instance = _instance(block, stage, start, stop, statements, variables, attr_uses, pinned, subs_by_attr,
                                 returned, reserved, same_convs)
            if instance is not None:
                found.append(instance)
        return found

    def structural_instance(block: str, stage: str, start: int, stop: int) -> Instance | None:
        instance = _instance(block, stage, start, stop, statements, variables, attr_uses, pinned, subs_by_attr,
                             returned, reserved)
        if instance is not None:
            tidy_local_names(instance.local_attrs, instance.local_vars, reserved)
        return instance

    named = instances_of(lambda ref: block_of(ref.name))
    # A class around one submodule (a keras_hub Dense with its activation) says nothing.
    scoped = [i for i in instances_of(source_block) if len(i.subs) >= 2]
    groups: dict[tuple, list[Instance]] = {}
    for instance in named:
        groups.setdefault(instance.signature, []).append(instance)
    _merge_optional_residuals(groups)
    _merge_optional_parts(groups, statements, variables)
    claimed = {p for group in groups.values() if len(group) >= 2 for i in group for p in range(i.start, i.stop)}
    for group in structural_instances(statements, lambda st: _reads_writes(st, variables), returned, claimed,
                                      structural_instance, lambda i: i.signature):
        groups[("structure", group[0].signature)] = group
    # A nested model holding repeated blocks of its own (an application used as a backbone)
    # is a class too; nested_blocks finds its blocks inside it.
    source_groups: dict[tuple, list[Instance]] = {}
    for instance in scoped:  # every source block is a class, one class per class and structure
        instance.source_class = source_classes[instance.block]
        source_groups.setdefault((instance.source_class, instance.signature), []).append(instance)
    # A class around the two layers of a model nested once (ConvNeXt's stem) adds lines and
    # says little: such a model stays inline.
    source_kinds = [g for g in source_groups.values() if len(g) >= 2 or len(g[0].subs) >= 3]
    scoped = [i for g in source_kinds for i in g]
    kinds_by_stage: dict[str, list[list[Instance]]] = {}
    for group in groups.values():
        group = [i for i in group if not any(_overlap(i, s) for s in scoped)]
        if len(group) >= 2:
            kinds_by_stage.setdefault(_class_base(group[0].stage), []).append(group)
    for group in source_kinds:
        kinds_by_stage.setdefault(_source_class_base(group[0]), []).append(group)
    instances = [i for group in kinds_by_stage.values() for g in group for i in g]
    kinds = []
    class_scope = NameScope(reserved)
    for base, groups_of_base in kinds_by_stage.items():
        groups_of_base.sort(key=len, reverse=True)  # the most frequent kind gets the plain name
        groups_of_base = [g for g in groups_of_base if _rebuilds(g, _parameters(g))]
        for n, group in enumerate(groups_of_base):
            name = base if n == 0 else f"{base}{n + 1}"  # Block, Block2, ...
            while name in class_scope:
                name += "_"
            class_scope.reserve(name)
            kind = BlockKind(name, group, _parameters(group))
            for instance in group:
                instance.kind = kind
            kinds.append(kind)
    kinds.sort(key=lambda k: k.template.start)
    extracted = sorted((i for i in instances if i.kind is not None), key=lambda i: i.start)
    sequences = _sequences(extracted, statements, variables, returned)
    attr_scope = NameScope(MODULE_RESERVED)
    in_sequence = {id(i) for s in sequences for i in s.instances}
    moved = {sub.attr for i in extracted for sub in i.subs}
    for sub in builder.submodules:
        if sub.attr not in moved:
            attr_scope.reserve(sub.attr)
    for sequence in sequences:
        sequence.attr = attr_scope.unique(sequence.attr)
        for n, instance in enumerate(sequence.instances):
            instance.path = f"{sequence.attr}.{n}"
    for instance in extracted:
        if id(instance) not in in_sequence:
            instance.path = attr_scope.unique(instance.block)
    return Structure(kinds, extracted, sequences)


def _merge_optional_residuals(groups: dict[tuple, list[Instance]]) -> None:
    """Blocks that differ only by their last statement, a residual add (MobileNet's and
    EfficientNet's blocks add their input when the shape stays, torchvision's `use_res_connect`),
    become one kind with a `residual` flag: the group with the add absorbs the one without."""
    canonical = {_canonical(signature): signature for signature in groups}
    for signature, group in list(groups.items()):
        stripped = group[0].without_residual
        plain = canonical.get(_canonical(stripped)) if stripped is not None else None
        if plain is None or plain not in groups or signature not in groups:
            continue
        for instance in group:
            instance.residual = True
        # The template (first instance) has the add; the docstring lists the blocks in order.
        groups[signature] = group + groups.pop(plain)


def _merge_optional_parts(groups: dict[tuple, list[Instance]], statements: list[Statement], variables: set[str]) -> None:
    """Blocks that are other blocks plus a side path computed from their input (ResNet's
    projection shortcut, EfficientNet's expansion conv) become one kind whose constructor
    leaves the path's submodules None (torchvision's `downsample`): the group with the path
    absorbs the group that uses the block input in its place."""
    canonical: dict[str, tuple] = {}
    for signature in groups:
        canonical.setdefault(_canonical(signature), signature)
    for signature in list(groups):
        group = groups.get(signature)
        if group is None or any(i.residual or i.optional or not i.has_optional for i in group):
            continue
        template = group[0]
        for part, stripped in _optional_parts(template, statements, variables):
            plain = canonical.get(_canonical(stripped))
            other = groups.get(plain) if plain != signature else None
            if other is None or any(i.residual or i.optional or not i.has_optional for i in other):
                continue
            # The same layers by name too: not a depthwise conv standing in for an expansion.
            kept = [template.local_attrs[s.attr] for n, s in enumerate(template.subs) if n not in part.subs]
            if kept != [other[0].local_attrs[s.attr] for s in other[0].subs]:
                continue
            for instance in group:
                instance.optional = part
            names = group[0].local_vars
            if part.feeds_add and "shortcut" not in names.values():
                names[part.value] = "shortcut"
            for instance in other:
                instance.has_optional = False
            groups[signature] = group + groups.pop(plain)  # type: ignore[arg-type]
            break


def _optional_parts(
    instance: Instance, statements: list[Statement], variables: set[str],
) -> Iterator[tuple[OptionalPart, tuple]]:
    """(part, the block's signature without it) for each run of up to three statements that
    computes one value from one block input alone, read by the statements after it."""
    own = statements[instance.start:instance.stop]
    for start in range(len(own)):
        for stop in range(start + 1, min(start + 3, len(own)) + 1):
            found = _without(instance, own, start, stop, variables)
            if found is not None:
                yield found


def _without(
    instance: Instance, own: list[Statement], start: int, stop: int, variables: set[str],
) -> tuple[OptionalPart, tuple] | None:
    """Statements [start, stop) of `instance` as an optional part, with the block's signature
    when they are left out and the later statements read their source instead, or None."""
    run = own[start:stop]
    written: set[str] = set()
    sources: set[str] = set()
    for st in run:
        reads, writes = _reads_writes(st, variables)
        if st.operator != "=" or any(n not in written and n not in instance.inputs for n in reads):
            return None
        sources.update(n for n in reads if n not in written)
        written.update(writes)
    attrs = {a for st in run for a in self_attributes(st.expr)} - {"training"}
    if len(sources) != 1 or len(run[-1].targets) != 1 or not attrs:
        return None
    value, source = run[-1].targets[0], sources.pop()
    if value in instance.outputs or any(s.attr in attrs and s.frozen for s in instance.subs):
        return None
    later: list[Statement] = []
    live, read, feeds_add, rebound = True, False, False, False
    for st in own[stop:]:
        reads, writes = _reads_writes(st, variables)
        if any(n in reads for n in written - {value}) or (live and st.operator != "=" and value in writes):
            return None
        if live and value in reads:
            if rebound:
                return None  # the blocks without the part would read another value of `source`
            read = True
            feeds_add = feeds_add or st.operator == "+=" or " + " in st.expr
            st = Statement(st.targets, rename(st.expr, {value: source}, {}), st.comment, st.values, st.operator)
        live = live and value not in writes
        rebound = rebound or source in writes
        later.append(st)
    if not read:
        return None
    keep = [n for n, sub in enumerate(instance.subs) if sub.attr not in attrs]
    stripped = _dataflow(instance.inputs, instance.outputs, [instance.subs[n] for n in keep],
                         [instance.ctors[n] for n in keep], own[:start] + later)[0]
    part = OptionalPart(range(start, stop), [n for n in range(len(instance.subs)) if n not in keep], value, source,
                        feeds_add)
    return part, stripped


def _own_position(instance: Instance, template: Instance, position: int, what: str) -> int | None:
    """Where `instance` has the template's `position`-th submodule (`what="subs"`) or
    statement; None for the optional part it lacks."""
    part = template.optional
    if part is None or instance.has_optional:
        return position
    skipped = list(part.subs if what == "subs" else part.statements)
    return None if position in skipped else position - sum(1 for n in skipped if n < position)


def _canonical(signature: tuple) -> str:
    """A signature with its value names numbered by first appearance (they count the flat
    forward()'s names, which differ between blocks that add their input and blocks that do not)."""
    names: dict[str, str] = {}
    return re.sub(r"\bv\d+_\d+\b", lambda m: names.setdefault(m.group(), f"v{len(names)}"), repr(signature))


def _strictly_inside(inner: Instance, outer: Instance) -> bool:
    return outer.start <= inner.start and inner.stop <= outer.stop and (inner.start, inner.stop) != (outer.start, outer.stop)


def _overlap(a: Instance, b: Instance) -> bool:
    return a.start < b.stop and b.start < a.stop


def _candidate_runs(
    statements: list[Statement], variables: set[str], propose: Callable[[SourceRef], tuple[str, str] | None],
    returned: list[str],
) -> list[tuple[str, str, int, int]]:
    """Maximal runs of statements computing values of one proposed block; a block whose
    statements are not contiguous is left out. An unnamed residual add right after a block
    (`x = inputs + layer_scale(x)` in a Keras application) is part of it."""
    owners: list[tuple[str, str] | None] = []
    for st in statements:
        blocks = {propose(v.producer.source) if v.producer is not None else None for v in st.values}
        owners.append(blocks.pop() if len(blocks) == 1 else (None if blocks else ("", "")))
    # A statement with no IR value (an intermediate step) belongs to the statement it feeds.
    for i in range(len(owners) - 1, -1, -1):
        if owners[i] == ("", ""):
            owners[i] = owners[i + 1] if i + 1 < len(owners) else None
    # Statements of unnamed layers (`re_lu_5`, `multiply_3`) between two statements of one
    # block belong to it.
    i = 0
    while i < len(owners):
        j = i
        while j < len(owners) and owners[j] is None:
            j += 1
        if j > i > 0 and j < len(owners) and owners[i - 1] == owners[j]:
            owners[i:j] = [owners[j]] * (j - i)
        i = j + 1
    runs: list[tuple[str, str, int, int]] = []
    i = 0
    while i < len(owners):
        owner = owners[i]
        j = i + 1
        while j < len(owners) and owners[j] == owner:
            j += 1
        if owner is not None:
            while j < len(owners) and owners[j] is None and _combines(statements, i, j, variables):
                j += 1
            j = _single_output_tail(statements, owners, i, j, variables, returned)
            runs.append((owner[0], owner[1], i, j))
        i = j
    runs = _pair_numbered_runs(runs)
    seen: dict[str, int] = {}
    for block, *_ in runs:
        seen[block] = seen.get(block, 0) + 1
    return [r for r in runs if seen[r[0]] == 1]


def _single_output_tail(
    statements: list[Statement], owners: list, start: int, stop: int, variables: set[str], returned: list[str],
) -> int:
    """A run with two live results (Xception's block: the pooled branch and its unnamed
    shortcut conv) extends over the unnamed statements that read only its values, up to the
    first one after which a single result is live (the unnamed `add` joining them)."""
    inputs, written = _inputs_and_results(statements, start, stop, variables)

    def live(end: int) -> int:
        return sum(_live_after(n, statements, end, variables, returned) for n in written)

    if live(stop) < 2:
        return stop
    end = stop
    while end < len(owners) and owners[end] is None:
        reads, writes = _reads_writes(statements[end], variables)
        if not set(reads) <= inputs | written:
            break
        written.update(writes)
        end += 1
        if live(end) == 1:
            return end
    return stop


# `conv_dw_3` + `conv_pw_3` (MobileNet's depthwise-separable block): a prefix, a layer kind, the index.
_NUMBERED_PART = re.compile(r"^(?P<prefix>[A-Za-z]+_)[A-Za-z]+_(?P<index>\d+)$")


def _pair_numbered_runs(runs: list[tuple[str, str, int, int]]) -> list[tuple[str, str, int, int]]:
    """Adjacent runs of one prefix and index (`conv_dw_3`, `conv_pw_3`) are one block `conv_3`."""
    merged: list[tuple[str, str, int, int]] = []
    for run in runs:
        if merged and merged[-1][3] == run[2]:
            previous = _NUMBERED_PART.match(merged[-1][0]) or re.match(r"^(?P<prefix>[A-Za-z]+_)(?P<index>\d+)$",
                                                                        merged[-1][0])
            current = _NUMBERED_PART.match(run[0])
            if previous and current and (previous["prefix"], previous["index"]) == (current["prefix"], current["index"]):
                block = previous["prefix"] + previous["index"]
                merged[-1] = (block, previous["prefix"], merged[-1][2], run[3])
                continue
        merged.append(run)
    return merged


def _inputs_and_results(statements: list[Statement], start: int, stop: int, variables: set[str]) -> tuple[set[str], set[str]]:
    """The names statements [start, stop) read before writing them, and the names they write."""
    inputs: set[str] = set()
    written: set[str] = set()
    for st in statements[start:stop]:
        reads, writes = _reads_writes(st, variables)
        inputs.update(n for n in reads if n not in written)
        written.update(writes)
    return inputs, written


def _combines(statements: list[Statement], start: int, stop: int, variables: set[str]) -> bool:
    """Does statement `stop` read both an input of statements [start, stop) and a value they
    computed, and nothing else?"""
    inputs, written = _inputs_and_results(statements, start, stop, variables)
    inputs -= written  # names still holding the block's input values
    reads = set(_reads_writes(statements[stop], variables)[0])
    return bool(reads & inputs) and bool(reads & written) and reads <= inputs | written


class _Variables(set):
    """The forward()'s variable names, with each statement's reads and writes worked out once
    (the analysis asks for them many times)."""

    def __init__(self, names: set[str]) -> None:
        super().__init__(names)
        self.flow: dict[int, tuple[list[str], list[str]]] = {}
        # name -> (positions of the statements that read or write it, whether each reads it)
        self.accesses: dict[str, tuple[list[int], list[bool]]] | None = None


def _variables(graph: Graph, builder: ModuleBuilder) -> _Variables:
    names = {builder.var(v) for v in graph.inputs}
    for st in builder.statements:
        names.update(st.targets)
    return _Variables(names)


def _reads_writes(st: Statement, variables: set[str]) -> tuple[list[str], list[str]]:
    cache = variables.flow if isinstance(variables, _Variables) else {}
    if id(st) not in cache:
        reads = [n for n in free_names(st.expr) if n in variables]
        if st.operator != "=":
            reads += st.targets
        cache[id(st)] = (reads, list(st.targets))
    return cache[id(st)]


def _live_after(name: str, statements: list[Statement], stop: int, variables: set[str], returned: list[str]) -> bool:
    """Is the value `name` holds after statement `stop - 1` read later? (Asked for every
    candidate block's values: an index of each name's accesses keeps it logarithmic.)"""
    if not isinstance(variables, _Variables):
        variables = _Variables(set(variables))
    if variables.accesses is None:
        variables.accesses = {}
        for position, st in enumerate(statements):
            reads, writes = _reads_writes(st, variables)
            for n in dict.fromkeys(reads + writes):
                positions, is_read = variables.accesses.setdefault(n, ([], []))
                positions.append(position)
                is_read.append(n in reads)
    positions, is_read = variables.accesses.get(name, ([], []))
    k = bisect_left(positions, stop)
    return is_read[k] if k < len(positions) else name in returned


def _instance(
    block: str, stage: str, start: int, stop: int, statements: list[Statement], variables: set[str], attr_uses: dict[str, int],
    pinned: set[str], subs_by_attr: dict[str, Submodule], returned: list[str], reserved: set[str], same_convs: bool = False,
) -> Instance | None:
    own = statements[start:stop]
    attrs: list[str] = []
    for st in own:
        for attr in self_attributes(st.expr):
            if attr == "training":
                continue
            if attr not in subs_by_attr or attr in pinned or attr in attrs:
                return None  # a method, a pinned or a twice-called module stays in the parent
            attrs.append(attr)
    own_uses = {a: 0 for a in attrs}
    for st in own:
        for attr in self_attributes(st.expr):
            if attr in own_uses:
                own_uses[attr] += 1
    if any(attr_uses[a] != own_uses[a] for a in attrs):
        return None
    inputs: list[str] = []
    written: set[str] = set()
    outputs: list[str] = []
    for st in own:
        reads, writes = _reads_writes(st, variables)
        for name in reads:
            if name not in written and name not in inputs:
                inputs.append(name)
        written.update(writes)
        for name in writes:
            if name not in outputs:
                outputs.append(name)
    outputs = [n for n in outputs if _live_after(n, statements, stop, variables, returned)]
    if not outputs or not attrs:
        return None
    subs = _ordered_subs(subs_by_attr, attrs)
    ctors = [parse_ctor(s.ctor) for s in subs]
    if any(c is None for c in ctors):
        return None
    if same_convs:
        ctors = [as_same_conv(c) for c in ctors]  # type: ignore[arg-type]
    instance = Instance(block, stage, start, stop, subs, inputs, outputs, written, ctors=ctors)  # type: ignore[arg-type]
    _local_names(instance, own, variables, reserved)
    instance.signature = _signature(instance, own)
    return instance


def _ordered_subs(subs_by_attr: dict[str, Submodule], attrs: list[str]) -> list[Submodule]:
    wanted = set(attrs)
    return [sub for attr, sub in subs_by_attr.items() if attr in wanted]


def _local_names(instance: Instance, own: list[Statement], variables: set[str], reserved: set[str]) -> None:
    attrs = NameScope(MODULE_RESERVED)
    for sub in instance.subs:
        instance.local_attrs[sub.attr] = attrs.unique(local_name(sub.attr, identifier(instance.block)))
    scope = NameScope(reserved | {"x"})
    single = len(instance.inputs) == 1
    writes = {t for st in own for t in st.targets}
    for n, name in enumerate(instance.inputs):
        if name == "x" or (single and "x" not in writes):
            instance.local_vars[name] = "x"
        elif n == 0 and "x" not in instance.inputs:  # the block's main input; the others (a mask) keep their names
            instance.local_vars[name] = scope.unique("inputs")
        else:
            instance.local_vars[name] = scope.unique("inputs" if single else local_name(name, identifier(instance.block)))
    for st in own:
        for name in st.targets:
            if name not in instance.local_vars:
                instance.local_vars[name] = "x" if name == "x" else scope.unique(local_name(name, identifier(instance.block)))


def _signature(instance: Instance, own: list[Statement]) -> tuple:
    """Equal for blocks that differ only in weights, names and constructor numbers. Values
    are numbered per assignment (`x = f(x)` and `a = f(b)` are the same dataflow), so a
    block's statements compare equal whichever names the flat forward() gave them."""
    signature, instance.numbers, instance.expressions, instance.without_residual = _dataflow(
        instance.inputs, instance.outputs, instance.subs, instance.ctors, own)
    return signature


def _dataflow(
    inputs_: list[str], outputs_: list[str], subs_: list[Submodule], ctors: list[Ctor], own: list[Statement],
) -> tuple[tuple, list[list[str]], list[str], tuple | None]:
    """(signature, number literals per statement, renamed statements, the signature without
    a last residual add or None)."""
    current = {name: f"i{n}" for n, name in enumerate(inputs_)}
    attrs = {sub.attr: f"m{n}" for n, sub in enumerate(subs_)}
    body = []
    inputs = set(current.values())
    all_numbers: list[list[str]] = []
    expressions: list[str] = []
    for st in own:
        expr = rename(st.expr, current, attrs)
        all_numbers.append(numbers(expr))
        expressions.append(expr)
        expr = replace_numbers(expr, dict.fromkeys(range(len(all_numbers[-1])), "#"))
        operator = st.operator
        if operator == "+=" and len(st.targets) == 1 and current[st.targets[0]] not in inputs:
            # `x += y` on a value made inside the block is `x = y + x` (the flat code writes the
            # one or the other depending on how the result is named outside the block).
            expr, operator = f"{expr} + {current[st.targets[0]]}", "="
        updated = tuple(current[t] for t in st.targets) if operator != "=" else ()
        for target in st.targets:
            current[target] = f"v{len(body)}_{len(current)}"
        body.append((updated, tuple(current[t] for t in st.targets), operator, expr, st.comment))
    subs = tuple((c.shape, s.frozen, s.comment, tuple(sorted(s.state))) for c, s in zip(ctors, subs_))
    outputs = tuple(current[n] for n in outputs_)
    without_residual = None
    if len(body) >= 2 and _adds_input(body[-1], body[-2], outputs) and not all_numbers[-1]:
        without_residual = (len(inputs_), body[-2][1], tuple(body[:-1]), subs)
    return (len(inputs_), outputs, tuple(body), subs), all_numbers, expressions, without_residual


def _adds_input(last: tuple, previous: tuple, outputs: tuple) -> bool:
    """Is `last` (a signature statement) `output = <previous value> + <block input>`, the
    block's only output?"""
    updated, targets, operator, expr, comment = last
    if updated or operator != "=" or comment or len(targets) != 1 or outputs != targets or len(previous[1]) != 1:
        return False
    terms = sorted(t.strip() for t in expr.split("+"))
    return len(terms) == 2 and previous[1][0] in terms and any(re.fullmatch(r"i\d+", t) for t in terms)


def _class_base(stage: str) -> str:
    """`conv2_block` -> `Block`, `block_` -> `Block`, `transformer_layer_` -> `TransformerLayer`
    (a word before the block word is kept unless it is a numbered stage like `conv2`)."""
    tokens = [t for t in re.split(r"[_/]", stage) if t]
    words = [re.sub(r"\d+", "", tokens[-1])] if tokens else []
    if len(tokens) >= 2 and tokens[-2].isalpha() and tokens[-2].lower() not in BLOCK_WORDS:
        words.insert(0, tokens[-2])
    return "".join(w[:1].upper() + w[1:] for w in words if w) or "Block"


_CONTAINERS = ("Functional", "Sequential", "Model")


def _source_class_base(instance: Instance) -> str:
    """The Keras class (`TransformerEncoder`); a nested functional or Sequential model, whose
    class says nothing, by its name without the index (`res_2` -> `Res`)."""
    if instance.source_class not in _CONTAINERS:
        return identifier(instance.source_class)
    tokens = [t for t in re.split(r"[_/]", instance.stage) if t[:1].isalpha()]  # not `1.00` (`mobilenetv2_1.00_224`)
    if any(t.lower() in BLOCK_WORDS for t in tokens):
        return _class_base(instance.stage)  # `convnext_tiny_downsampling_block_0` -> `DownsamplingBlock`
    return identifier(tokens[-1][:1].upper() + tokens[-1][1:]) if tokens else "Block"  # `convnext_tiny_stem` -> `Stem`


def _parameters(group: list[Instance]) -> list[Parameter]:
    """Numbers that differ between the blocks, one parameter per distinct pattern: in the
    submodule constructors, and in forward() (a reshape to the block's channel count)."""
    by_values: dict[tuple[str | None, ...], Parameter] = {}
    scope = NameScope(MODULE_RESERVED | {"self"})
    template = group[0]
    for position, ctor in enumerate(template.ctors):
        own = [_own_position(i, template, position, "subs") for i in group]
        for slot in ctor.numbers:
            values = tuple(None if n is None else i.ctors[n].numbers.get(slot, "") for i, n in zip(group, own))
            sub = template.subs[position]
            base = _slot_name(ctor.func, slot, template.local_attrs[sub.attr])
            if len({v for v in values if v is not None}) == 1:
                # Constant, unless in an optional part that one block has: its stride is the block's.
                param = next((p for p in by_values.values() if p.name == base), None) if None in values else None
                if param is not None and _matching(values, [param]) is param:
                    param.slots.append((position, slot))
                continue
            param = by_values.get(values) or _matching(values, list(by_values.values()))
            if param is None:
                default = _CONV_DEFAULTS.get(slot) if isinstance(slot, str) and _CONV.match(ctor.func) else None
                name = scope.unique(base) if base not in scope else scope.unique(
                    f"{template.local_attrs[sub.attr]}_{base}")
                param = Parameter(name, values, [], default, _annotation(values))
            by_values.setdefault(values, param)
            param.slots.append((position, slot))
    for position in range(len(template.numbers)):
        own = [_own_position(i, template, position, "statements") for i in group]
        if any(k is None or k >= len(i.numbers) for i, k in zip(group, own)):
            continue  # a residual add has no numbers; an optional part's are the same in every block with it
        for n in range(len(template.numbers[position])):
            values = tuple(i.numbers[k][n] for i, k in zip(group, own))  # type: ignore[index]
            if len(set(values)) == 1:
                continue
            param = by_values.get(values)
            if param is None:
                caller = number_callers(template.expressions[position])[n]
                param = Parameter(scope.unique(caller or "size"), values, [], None, _annotation(values))
                by_values[values] = param
            param.uses.append((position, n))
    if template.residual and not all(i.residual for i in group):
        values = tuple(str(i.residual) for i in group)
        by_values[values] = Parameter(scope.unique("residual"), values, [], default="True", annotation="bool", flag=True)
    if template.optional is not None:
        values = tuple(str(i.has_optional) for i in group)
        by_values[values] = Parameter(scope.unique(_switch_name(template)), values, [], default="False",
                                      annotation="bool", switch=True)
    params = list({id(p): p for p in by_values.values()}.values())
    for p in params:  # a block without the optional part: any value will do
        known = next(v for v in p.values if v is not None)
        p.values = tuple(_filler(p, i) or p.default or known if v is None else v for v, i in zip(p.values, group))
    return [p for p in params if p.default is None] + [p for p in params if p.default is not None]


def _filler(p: Parameter, instance: Instance) -> str | None:
    """The input channels of a block whose first layer is the optional part it lacks
    (EfficientNet's first block without expansion): those of its own first layer, not a number
    from another block."""
    if (0, 0) not in p.slots or not instance.ctors:
        return None
    return instance.ctors[0].numbers.get(0)


def _rebuilds(group: list[Instance], params: list[Parameter]) -> bool:
    """Does the class give every block its own constructor numbers and forward() numbers?
    (A check of the parameter inference: a block it cannot rebuild stays inline.)"""
    template = group[0]
    by_slot = {(position, slot): p for p in params for position, slot in p.slots}
    by_use = {use: p for p in params for use in p.uses}
    for index, instance in enumerate(group):
        for position, ctor in enumerate(template.ctors):
            own = _own_position(instance, template, position, "subs")
            for slot, text in ctor.numbers.items() if own is not None else ():
                p = by_slot.get((position, slot))
                if (_value(p, index) if p is not None else text) != instance.ctors[own].numbers.get(slot, ""):  # type: ignore[index]
                    return False
        for position, texts in enumerate(template.numbers):
            own = _own_position(instance, template, position, "statements")
            for n, text in enumerate(texts) if own is not None and own < len(instance.numbers) else ():
                p = by_use.get((position, n))
                if (_value(p, index) if p is not None else text) != instance.numbers[own][n]:  # type: ignore[index]
                    return False
    return True


def _value(p: Parameter, index: int) -> str:
    return str(p.factor * int(p.base.values[index])) if p.base is not None else p.values[index]  # type: ignore[return-value, arg-type]


def _matching(values: tuple[str | None, ...], params) -> Parameter | None:
    """A parameter equal to `values` where both are known, or one `values` is a whole
    multiple of (Bottleneck's `4 * out_channels`), as a derived parameter."""
    for p in params:
        if not p.derived and all(a is None or b is None or a == b for a, b in zip(values, p.values)):
            p.values = tuple(b if b is not None else a for a, b in zip(values, p.values))
            return p
    for p in params:
        pairs = [(a, b) for a, b in zip(values, p.values) if a is not None]
        if len(pairs) < 2 or p.derived or p.annotation != "int" or any(b is None or not a.isdigit() or b == "0" for a, b in pairs):
            continue
        if p.name in _GEOMETRY:  # `4 * stride` channels would be a coincidence, not a design
            continue
        ratios = {int(a) / int(b) for a, b in pairs}
        if len(ratios) == 1 and (ratio := ratios.pop()) > 1 and ratio.is_integer():
            return Parameter(f"{int(ratio)} * {p.name}", values, [], base=p, factor=int(ratio))  # type: ignore[arg-type]
    return None


def _switch_name(template: Instance) -> str:
    """`projection` for a part feeding the residual add; else `with_<first submodule>`."""
    part = template.optional
    assert part is not None
    if part.feeds_add:
        return "projection"
    return f"with_{template.local_attrs[template.subs[part.subs[0]].attr]}"


def _slot_name(func: str, slot: int | str, attr: str) -> str:
    if isinstance(slot, str):
        return slot
    for family, names in _POSITIONAL_NAMES.items():
        if family in func.rsplit(".", 1)[-1] and slot < len(names):
            return names[slot]
    if func == "Variable" and slot == 0:
        return f"{attr}_shape"
    return f"{attr}_arg{slot}"


def _annotation(values: tuple[str | None, ...]) -> str:
    kinds = set()
    for text in filter(None, values):
        value = ast.literal_eval(text)
        kinds.add("tuple" if isinstance(value, tuple) else type(value).__name__)
    if kinds == {"int"}:
        return "int"
    if kinds <= {"int", "float"}:
        return "float"
    return ""


def _sequences(
    extracted: list[Instance], statements: list[Statement], variables: set[str], returned: list[str],
) -> list[Sequence]:
    sequences: list[Sequence] = []
    run: list[Instance] = []

    def close() -> None:
        if len(run) >= 2:
            attr = _sequence_attr(run[0].stage)
            if run[0].source_class and attr == identifier(run[0].stage) and not attr.endswith("s"):
                attr += "s"  # nested `encoder_0`, `encoder_1`, ... -> self.encoders
            sequences.append(Sequence(attr, list(run)))
        run.clear()

    for instance in extracted:
        single = len(instance.inputs) >= 1 and len(instance.outputs) == 1
        if not (run and single and _chains(run[-1], instance, statements, variables, returned)):
            close()
        if single:
            run.append(instance)
    close()
    return sequences


def _chains(previous: Instance, instance: Instance, statements: list[Statement], variables: set[str],
            returned: list[str]) -> bool:
    """`instance` directly follows `previous`, in the same stage, is the only reader of its
    output, and shares its other inputs."""
    link = previous.outputs[0]
    shared = previous.inputs[1:]
    return (
        previous.stop == instance.start
        and previous.stage == instance.stage
        and instance.inputs == [link, *shared]
        and not set(shared) & previous.writes
        and (link in instance.writes or not _live_after(link, statements, instance.stop, variables, returned))
    )


def _sequence_attr(stage: str) -> str:
    """`conv2_block` -> `conv2`; `block_` -> `blocks`; `transformer_layer_` -> `transformer_layers`."""
    stem = stage.rstrip("_/")
    for word in BLOCK_WORDS:
        if stem.endswith(word):
            rest = stem[: -len(word)].rstrip("_/")
            if rest and rest[-1].isdigit():
                return identifier(rest)
            return identifier(stem + "s")
    return identifier(stem)
