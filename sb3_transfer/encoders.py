"""Plain descriptions of encoders: an ``nn.Module`` written down as JSON-able data, and rebuilt from it without its class.

A model trained from a user's encoder (``load_and_adapt(encoder, env)``) must load where the encoder's class cannot be
imported, and its saved ``policy_kwargs`` must hold only what SB3 itself writes (classes SB3 can import, plain data).
So the encoder is traced with ``torch.fx`` into a graph of standard ``torch.nn`` layers, parameters and tensor
operations, and that graph is written down as data: :func:`describe_module` makes the description,
:func:`build_module` rebuilds a module from it. Only allow-listed layers, functions and tensor methods are written or
rebuilt, so a description read from a file cannot call anything else (``torch.load``, ``open``...).
"""

from __future__ import annotations

import inspect
import math
import operator
from typing import Any

import torch as th
import torch.nn.functional as F
from torch import fx, nn

from sb3_transfer.errors import InvalidSourceError

#: Layers a description may hold (``torch.nn`` classes, rebuilt from their constructor arguments).
LAYERS: tuple[str, ...] = (
    "Linear", "Bilinear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d",
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LayerNorm", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d",
    "Dropout", "Dropout1d", "Dropout2d", "AlphaDropout", "Flatten", "Unflatten", "Identity",
    "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d", "ZeroPad2d", "ReLU", "ReLU6", "LeakyReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish",
    "Sigmoid", "Tanh", "Softplus", "Softsign", "Hardtanh", "Hardswish", "Hardsigmoid", "LogSigmoid", "Tanhshrink",
    "Softmax", "LogSoftmax", "Softmin", "PReLU",
)  # fmt: skip

_TORCH = (
    "flatten", "cat", "concat", "stack", "relu", "tanh", "sigmoid", "add", "sub", "mul", "div", "matmul", "mean", "sum",
    "amax", "amin", "max", "min", "reshape", "transpose", "permute", "squeeze", "unsqueeze", "clamp", "exp", "log",
    "sqrt", "rsqrt", "abs", "neg", "pow", "softmax", "log_softmax", "square", "where", "maximum", "minimum", "chunk",
    "split", "narrow", "select", "erf", "sin", "cos",
)  # fmt: skip
_FUNCTIONAL = (
    "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish", "tanh", "sigmoid", "softplus",
    "softsign", "hardtanh", "hardswish", "hardsigmoid", "logsigmoid", "softmax", "log_softmax", "linear", "conv1d",
    "conv2d", "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
    "adaptive_max_pool2d", "layer_norm", "group_norm", "batch_norm", "normalize", "dropout", "pad",
)  # fmt: skip
_OPERATOR = ("add", "sub", "mul", "truediv", "floordiv", "mod", "neg", "pos", "pow", "matmul", "getitem")
#: Functions a description may call, by the name it writes.
FUNCTIONS: dict[str, Any] = {
    **{f"torch.{name}": getattr(th, name) for name in _TORCH},
    **{f"torch.nn.functional.{name}": getattr(F, name) for name in _FUNCTIONAL},
    **{f"operator.{name}": getattr(operator, name) for name in _OPERATOR},
    "getattr": getattr,
}
_NAMES = {id(function): name for name, function in FUNCTIONS.items()}
#: Tensor methods a description may call.
METHODS = frozenset(
    "view reshape flatten permute transpose contiguous mean sum amax amin max min squeeze unsqueeze relu tanh sigmoid "
    "float size dim chunk split clamp softmax log_softmax exp log abs neg matmul mul add sub div pow expand repeat "
    "type_as sqrt square narrow select".split()
)
#: Tensor attributes ``getattr`` may read.
ATTRIBUTES = frozenset({"shape", "ndim", "dtype", "T"})
_DTYPES = {str(d).removeprefix("torch."): d for d in (th.float16, th.bfloat16, th.float32, th.float64, th.int64, th.bool)}


class _Undescribable(Exception):
    """A part of the module a description cannot hold."""


def describe_module(module: nn.Module) -> dict[str, Any]:
    """
    Write an encoder down as JSON-able data (its weights excepted), to be rebuilt by :func:`build_module`.

    :param module: The encoder.
    :return: The description: ``{"layers": {path: {"class", "kwargs"}}, "tensors": {path: {"shape", "dtype",
        "parameter"}}, "nodes": [...]}``.
    :raises ValueError: When the module cannot be traced, or uses a layer, function or method outside the allow-lists;
        the message says which.
    """
    try:
        traced = fx.symbolic_trace(module)
    except Exception as e:
        raise ValueError(f"torch.fx cannot trace it ({type(e).__name__}: {e})") from None
    layers: dict[str, Any] = {}
    tensors: dict[str, Any] = {}
    nodes = []
    try:
        for node in traced.graph.nodes:
            target: Any = node.target
            if node.op == "call_module":
                layers[target] = _describe_layer(traced.get_submodule(target))
            elif node.op == "get_attr":
                tensors[target] = _describe_tensor(target, traced)
            elif node.op == "call_function":
                target = _NAMES.get(id(target))
                if target is None:
                    raise _Undescribable(f"function {getattr(node.target, '__name__', node.target)!r}")
                if target == "getattr" and node.args[1] not in ATTRIBUTES:
                    raise _Undescribable(f"attribute {node.args[1]!r}")
            elif node.op == "call_method" and target not in METHODS:
                raise _Undescribable(f"tensor method {target!r}")
            nodes.append([node.op, node.name, target, _encode(node.args), _encode(node.kwargs)])
    except _Undescribable as e:
        raise ValueError(f"it uses {e}, which a plain description does not hold") from None
    return {"layers": layers, "tensors": tensors, "nodes": nodes}


def build_module(description: dict[str, Any], device: str | None = None) -> fx.GraphModule:
    """
    Rebuild an encoder from :func:`describe_module`'s description, without its class. Its weights are zeros or the
    layers' own initialisation, until a transplant or a model's saved weights fill them.

    :param description: The description (possibly from a file: only allow-listed layers, functions and methods are
        built, and anything else is refused).
    :param device: Where to make the tensors; ``"meta"`` builds the shapes without allocating them.
    :return: The module.
    :raises InvalidSourceError: For a description that is malformed or names anything outside the allow-lists.
    """
    try:
        root = nn.Module()
        for path, layer in description["layers"].items():
            if layer["class"] not in LAYERS:
                raise InvalidSourceError(f"layer {path!r}: {layer['class']!r} is not a layer a description may build")
            _attach(root, path, _layer(layer["class"], layer["kwargs"], device))
        for path, tensor in description["tensors"].items():
            value = th.zeros(tensor["shape"], dtype=_DTYPES[tensor["dtype"]], device=device)
            _attach(root, path, nn.Parameter(value, requires_grad=value.is_floating_point()) if tensor["parameter"] else value)
        graph = fx.Graph()
        env: dict[str, fx.Node] = {}
        for op, name, target, args, kwargs in description["nodes"]:
            if op == "call_function" and target not in FUNCTIONS:
                raise InvalidSourceError(f"node {name!r}: function {target!r} is not one a description may call")
            if op == "call_method" and target not in METHODS:
                raise InvalidSourceError(f"node {name!r}: tensor method {target!r} is not one a description may call")
            if op == "output":
                graph.output(_decode(args, env)[0])
                continue
            if op not in ("placeholder", "get_attr", "call_module", "call_function", "call_method"):
                raise InvalidSourceError(f"node {name!r}: unknown operation {op!r}")
            if op == "call_function" and target == "getattr" and _decode(args, env)[1] not in ATTRIBUTES:
                raise InvalidSourceError(f"node {name!r}: getattr may read only {', '.join(sorted(ATTRIBUTES))}")
            target = FUNCTIONS[target] if op == "call_function" else target
            env[name] = graph.create_node(op, target, tuple(_decode(args, env)), _decode(kwargs, env), name=name)
        return fx.GraphModule(root, graph)
    except InvalidSourceError as e:
        raise InvalidSourceError(f"The encoder description cannot be built: {e}.") from None
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError, IndexError) as e:
        raise InvalidSourceError(f"The encoder description is malformed ({type(e).__name__}: {e}).") from None


def _layer(name: str, kwargs: dict[str, Any], device: str | None = None) -> nn.Module:
    cls = getattr(nn, name)
    decoded = {key: _decode(value, {}) for key, value in kwargs.items()}
    if device is not None and "device" in inspect.signature(cls.__init__).parameters:
        decoded["device"] = device
    return cls(**decoded)


def _describe_layer(layer: nn.Module) -> dict[str, Any]:
    name = type(layer).__name__
    if name not in LAYERS or getattr(nn, name) is not type(layer):
        raise _Undescribable(f"layer {type(layer).__module__}.{type(layer).__qualname__}")
    kwargs: dict[str, Any] = {}
    for parameter in list(inspect.signature(type(layer).__init__).parameters.values())[1:]:
        if parameter.name in ("device", "dtype") or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if not hasattr(layer, parameter.name):
            if parameter.default is parameter.empty:
                raise _Undescribable(f"layer {name} (its argument {parameter.name!r} is not kept)")
            continue
        value = getattr(layer, parameter.name)
        if isinstance(value, th.Tensor) or (value is None and parameter.name in ("bias", "weight")):
            value = value is not None  # bias=True / False
        kwargs[parameter.name] = _encode(value)
    rebuilt = _layer(name, kwargs)
    same = repr(rebuilt) == repr(layer) and {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in layer.state_dict().items()
    }
    if not same:
        raise _Undescribable(f"layer {name} (not rebuilt as it is from its attributes)")
    return {"class": name, "kwargs": kwargs}


def _describe_tensor(path: str, traced: fx.GraphModule) -> dict[str, Any]:
    owner, _, attribute = path.rpartition(".")
    value = getattr(traced.get_submodule(owner) if owner else traced, attribute)
    if not isinstance(value, th.Tensor) or str(value.dtype).removeprefix("torch.") not in _DTYPES:
        raise _Undescribable(f"attribute {path!r} ({type(value).__name__})")
    return {
        "shape": list(value.shape),
        "dtype": str(value.dtype).removeprefix("torch."),
        "parameter": isinstance(value, nn.Parameter),
    }


def _attach(root: nn.Module, path: str, value: nn.Module | th.Tensor) -> None:
    *owners, attribute = path.split(".")
    module = root
    for owner in owners:
        if not hasattr(module, owner):
            module.add_module(owner, nn.Module())
        module = getattr(module, owner)
    if isinstance(value, nn.Module):
        module.add_module(attribute, value)
    elif isinstance(value, nn.Parameter):
        module.register_parameter(attribute, value)
    else:
        module.register_buffer(attribute, value)


def _encode(value: Any) -> Any:
    """A node argument as JSON-able data; dicts are tags (``{"node": name}``, ``{"tuple": [...]}``...)."""
    if isinstance(value, fx.Node):
        return {"node": value.name}
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, tuple | list):
        return {"tuple" if isinstance(value, tuple) else "list": [_encode(v) for v in value]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"dict": {k: _encode(v) for k, v in value.items()}}
    if isinstance(value, slice):
        return {"slice": [_encode(value.start), _encode(value.stop), _encode(value.step)]}
    if isinstance(value, th.dtype) and str(value).removeprefix("torch.") in _DTYPES:
        return {"dtype": str(value).removeprefix("torch.")}
    if value is Ellipsis:
        return {"ellipsis": True}
    raise _Undescribable(f"an argument of type {type(value).__name__}")


def _decode(value: Any, env: dict[str, fx.Node]) -> Any:
    if not isinstance(value, dict):
        if value is None or isinstance(value, bool | int | float | str):
            return value
        raise TypeError(f"{type(value).__name__} where an encoded argument was expected")
    ((tag, content),) = value.items()
    decoders = {
        "node": lambda: env[content],
        "float": lambda: float(content),
        "tuple": lambda: tuple(_decode(v, env) for v in content),
        "list": lambda: [_decode(v, env) for v in content],
        "dict": lambda: {str(k): _decode(v, env) for k, v in content.items()},
        "slice": lambda: slice(*(_decode(v, env) for v in content)),
        "dtype": lambda: _DTYPES[content],
        "ellipsis": lambda: Ellipsis,
    }
    if tag not in decoders:
        raise ValueError(f"unknown tag {tag!r}")
    return decoders[tag]()
