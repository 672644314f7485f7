"""Adapting pretrained layers to a new task: input adapters, conv channel changes, action-head remapping."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import get_flattened_obs_dim, is_image_space, preprocess_obs
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, FlattenExtractor
from torch import nn

from sb3_transfer.errors import InvalidSourceError


class InputAdapter(BaseFeaturesExtractor):
    """
    A linear adapter in front of a pretrained features extractor, for a target task whose (flattened) observation
    size differs from the source's.

    Initialisation: the identity on the first ``min(n_obs, adapted_dim)`` inputs, so that the pretrained layers see
    the inputs the two tasks share exactly as before; the target's extra inputs (if any) keep ``nn.Linear``'s random
    init, so that they are heard from the first step (zero there starved them on CartPole -> Acrobot, where the
    extra inputs are the velocities: ``benchmarks/adapter_init.py``); inputs the target lacks read as zero; bias zero.

    :param observation_space: The target task's observation space.
    :param adapted_dim: The input size the pretrained layers expect.
    :param extractor_class: The features extractor applied after the adapter.
    :param extractor_kwargs: Keyword arguments for ``extractor_class``.
    :param new_inputs: How the weights of the target's extra inputs start: ``"random"`` (``nn.Linear``'s init) or
        ``"zero"``.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        adapted_dim: int,
        extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        extractor_kwargs: dict[str, Any] | None = None,
        new_inputs: str = "random",
    ) -> None:
        if new_inputs not in ("random", "zero"):
            raise ValueError(f"InputAdapter new_inputs='{new_inputs}': choose 'random' or 'zero'.")
        n_obs = get_flattened_obs_dim(observation_space)
        inner_space = spaces.Box(-np.inf, np.inf, (adapted_dim,), np.float32)
        extractor = extractor_class(inner_space, **(extractor_kwargs or {}))
        super().__init__(observation_space, extractor.features_dim)
        self.flatten = nn.Flatten()
        self.adapter = nn.Linear(n_obs, adapted_dim)
        self.extractor = extractor
        self.new_inputs = new_inputs
        self.reset_identity()

    def reset_identity(self) -> None:
        """
        Start the adapter as the identity on the shared inputs (again: an actor-critic policy's orthogonal
        initialisation overwrites every ``Linear`` of its extractors after they are built).
        """
        adapted_dim, n_obs = self.adapter.weight.shape
        shared = min(n_obs, adapted_dim)
        with th.no_grad():
            # Inputs beyond the shared ones keep their random init: starting them at zero starves them (measured
            # on CartPole -> Acrobot, whose extra inputs are the velocities: see the README).
            self.adapter.weight[:, :shared] = th.eye(adapted_dim, shared)
            self.adapter.weight[shared:] = 0.0
            if self.new_inputs == "zero":
                self.adapter.weight[:, shared:] = 0.0
            self.adapter.bias.zero_()

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.extractor(self.adapter(self.flatten(observations)))


class ModuleExtractor(BaseFeaturesExtractor):
    """
    Any ``nn.Module`` (a pretrained encoder, say) used as an SB3 features extractor.

    The module receives the observations as SB3 preprocesses them (images scaled to [0, 1] and channel-first) and
    its output is flattened. Its output size is found by a forward pass on a sample observation. When the target
    images have a different channel count than the module's first ``Conv2d`` expects, that layer is rebuilt with
    the target's channel count (the transplant then fills it from the pretrained weights, see
    :func:`adapt_conv_channels`).

    :param observation_space: The target task's observation space.
    :param module: The encoder; it is deep-copied, the caller's instance is never modified.
    :param features_dim: Output size; found by a forward pass when ``None``.
    """

    def __init__(self, observation_space: spaces.Space, module: nn.Module, features_dim: int | None = None) -> None:
        module = copy.deepcopy(module)
        if is_image_space(observation_space, check_channels=False):
            _match_first_conv_channels(module, observation_space.shape[0])  # type: ignore[index]  # an image space
        if features_dim is None:
            features_dim = _probe_output_dim(module, observation_space)
        super().__init__(observation_space, features_dim)
        self.module = module
        self.flatten = nn.Flatten()

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.flatten(self.module(observations))


def first_layer(module: nn.Module) -> nn.Module | None:
    """The first ``Linear`` or ``Conv2d`` of a module in registration order, or ``None``."""
    return next((m for m in module.modules() if isinstance(m, nn.Linear | nn.Conv2d)), None)


def _match_first_conv_channels(module: nn.Module, channels: int) -> None:
    conv = first_layer(module)
    if not isinstance(conv, nn.Conv2d) or conv.in_channels == channels or conv.groups != 1:
        return
    parent_name, _, attr = next(name for name, m in module.named_modules() if m is conv).rpartition(".")
    parent = module.get_submodule(parent_name) if parent_name else module
    new_conv = nn.Conv2d(
        channels,
        conv.out_channels,
        conv.kernel_size,  # type: ignore[arg-type]
        stride=conv.stride,  # type: ignore[arg-type]
        padding=conv.padding,  # type: ignore[arg-type]
        dilation=conv.dilation,  # type: ignore[arg-type]
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
    )
    with th.no_grad():
        new_conv.weight.copy_(adapt_conv_channels(conv.weight, channels))
        if conv.bias is not None and new_conv.bias is not None:
            new_conv.bias.copy_(conv.bias)
    setattr(parent, attr, new_conv)


def _probe_output_dim(module: nn.Module, observation_space: spaces.Space) -> int:
    sample = observation_space.sample()
    obs = {k: th.as_tensor(v)[None] for k, v in sample.items()} if isinstance(sample, dict) else th.as_tensor(sample)[None]
    obs = preprocess_obs(obs, observation_space)
    was_training = module.training
    module.eval()  # batch norm cannot run in training mode on a batch of one
    try:
        with th.no_grad():
            out = module(obs)
    except Exception as e:
        shape = getattr(observation_space, "shape", None)
        raise InvalidSourceError(
            f"The source module {type(module).__name__} failed on a sample observation of the target task "
            f"(a batch of one, shape {(1, *shape) if shape else 'dict'}): {type(e).__name__}: {e}. It must accept a "
            "batch of observations as SB3 preprocesses them (float, images channel-first and scaled to [0, 1])."
        ) from e
    finally:
        module.train(was_training)
    if not isinstance(out, th.Tensor):
        raise InvalidSourceError(f"The source module {type(module).__name__} returned {type(out).__name__}, not a tensor.")
    return int(out.reshape(out.shape[0], -1).shape[1])


def adapt_conv_channels(weight: th.Tensor, channels: int) -> th.Tensor:
    """
    Adapt a conv kernel ``(out, c_in, kh, kw)`` to a new number of input channels, throwing nothing pretrained away.

    Target channel ``j`` takes source channel ``j mod c_in``. With more target channels, each source kernel is
    divided among its copies (for a multiple of ``c_in`` this is timm's rule for loading RGB weights into models with
    other channel counts); with fewer, the source kernels that land on one target channel are summed. Either way the
    layer answers an input whose channels are all alike exactly as before, so activations keep their scale.

    :param weight: The pretrained kernel.
    :param channels: The target's input channel count.
    :return: A kernel of shape ``(out, channels, kh, kw)``.
    """
    c_in = weight.shape[1]
    if channels >= c_in:
        index = th.arange(channels, device=weight.device) % c_in
        copies = th.bincount(index, minlength=c_in).to(weight.dtype)
        return weight[:, index] / copies[index].view(1, -1, 1, 1)
    out = weight.new_zeros(weight.shape[0], channels, *weight.shape[2:])
    return out.index_add_(1, th.arange(c_in, device=weight.device) % channels, weight)


def remap_head(
    source: th.Tensor,
    target: th.Tensor,
    source_actions: int,
    target_actions: int,
    action_map: Mapping[int, int],
) -> th.Tensor:
    """
    Build a head tensor (``weight`` or ``bias``) for the target actions from the source head.

    Heads are laid out as SB3 does: ``n_quantiles`` blocks of ``n_actions`` rows, quantile-major (a DQN head is the
    one-quantile case). Each mapped target action takes the rows of its source action; quantile counts are
    converted keeping the Q-value (the mean over quantiles) exactly: a DQN row is the mean of the quantile rows, a
    QR-DQN row from a DQN head repeats the Q row, and between two quantile counts each target quantile averages the
    source quantiles over its probability range. Unmapped target actions start at the mean of the mapped actions'
    rows, so that a new action starts with an average value estimate instead of one on an arbitrary scale.

    :param source: Source head tensor, first dimension ``n_quantiles_src * source_actions``.
    :param target: Target head tensor (shape reference), first dimension ``n_quantiles_tgt * target_actions``.
    :param source_actions: Number of source actions.
    :param target_actions: Number of target actions.
    :param action_map: ``{target_action: source_action}``; must not be empty.
    :return: The new target tensor.
    """
    n_q_src, n_q_tgt = source.shape[0] // source_actions, target.shape[0] // target_actions
    src = source.reshape(n_q_src, source_actions, *source.shape[1:])
    src = _convert_quantiles(src, n_q_tgt)
    mapped = sorted(action_map)
    out = src[:, [action_map[a] for a in mapped]].mean(dim=1, keepdim=True).expand(-1, target_actions, *src.shape[2:]).clone()
    out[:, mapped] = src[:, [action_map[a] for a in mapped]]
    return out.reshape(target.shape)


def _convert_quantiles(blocks: th.Tensor, n_out: int) -> th.Tensor:
    """
    Re-sample quantile rows: each target quantile averages the source quantile function over its probability range
    ``[j / n_out, (j + 1) / n_out]`` (the source's being piecewise constant). This keeps the mean over quantiles, the
    Q-value, exactly; to one quantile it is the mean, from one it is a copy.
    """
    n_in = blocks.shape[0]
    if n_in == n_out:
        return blocks
    edges_in = th.linspace(0, 1, n_in + 1, dtype=th.float64)
    edges_out = th.linspace(0, 1, n_out + 1, dtype=th.float64)
    overlap = (
        th.minimum(edges_out[1:, None], edges_in[None, 1:]) - th.maximum(edges_out[:-1, None], edges_in[None, :-1])
    ).clamp(min=0)
    weights = (overlap * n_out).to(blocks.dtype)  # (n_out, n_in), rows sum to 1
    return th.einsum("oi,i...->o...", weights, blocks)
