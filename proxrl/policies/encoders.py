"""Observation encoders: what turns an observation into the feature vector the actor-critic's trunks and heads take.

- ``mlp``: the observation flattened (Discrete: one-hot); the MLP trunks do the rest (no module here).
- ``cnn``: the Nature-DQN CNN (Mnih et al. 2015; CleanRL's ``ppo_atari.py`` and SB3's ``NatureCNN``): three convs
  (32 8×8/4, 64 4×4/2, 64 3×3/1), a 512-unit layer, ReLU, orthogonal init (gain √2). uint8 images are scaled by
  1/255 here, on the learner, so rollouts store them as uint8.
- small images (uint8, 4 to 35 pixels high or wide, such as MiniGrid's 7 × 7 × 3 view): :class:`SmallCNN`, three
  2×2 convs; ``policy: auto`` picks it (:func:`image_encoder` states the whole size rule).
- ``dict``: one encoder per key of a Dict space (a CNN for image keys, flattening for the others), concatenated,
  as SB3's ``CombinedExtractor``; with ``policy: mlp`` every key is flattened. The env gives one flat row
  (:mod:`proxrl.envs.flat_dict`: images stay uint8 beside float keys, so rollouts need no dict buffers); the
  encoder takes it apart per key.
- ``custom``: the user's ``nn.Module`` class, ``Class(observation_space, **kwargs)``, observations → features
  ``[B, F]`` (F found by one forward pass); on a Dict space it gets ``{key: [B, *shape]}``, as in SB3.

``cnn_precision=bfloat16`` runs every Nature CNN under autocast (bf16 convs and 512-unit layer, float32 weights,
gradients and Adam) and hands float32 features to the heads, so logits, log-probabilities and PPO's ratio stay in
float32: a PPO minibatch step 1.36× faster than float32 channels-last on a CPU with native bf16
(benchmarks/cnn_layouts.py).
"""

from __future__ import annotations

import importlib
import math
import warnings
from collections.abc import Callable
from typing import Any, TypeGuard, cast

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from ..config import object_path, param, registered_object
from ..errors import ConfigError
from ..envs.flat_dict import DictLayout
from ..errors import RunWarning

NATURE_MIN_SIZE = 36  # the Nature CNN's convs (8/4, 4/2, 3/1) need at least 36 × 36 pixels
SMALL_MIN_SIZE = 4  # the small CNN's three 2×2 convs need at least 4 × 4 (MiniGrid's views are 7 × 7)
POLICIES = ("auto", "mlp", "cnn", "custom")
CNN_PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def is_image(space: spaces.Space[Any]) -> TypeGuard[spaces.Box]:
    """A Box of uint8 pixels with 2 or 3 dimensions (SB3's rule: the dtype says it is an image)."""
    return isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) in (2, 3)


def fits_nature_cnn(space: spaces.Box, image_channels: str, least: int = NATURE_MIN_SIZE) -> bool:
    """Whether the images of ``space`` are at least ``least`` pixels high and wide (the Nature CNN's 36 by
    default; ambiguous channels: True, so that the CNN names the ambiguity)."""
    shape = tuple(space.shape)
    try:
        first = channels_first(shape, image_channels)
    except ConfigError:
        return True  # let the CNN say what is ambiguous
    h, w = shape[-2:] if len(shape) == 2 or first else shape[:2]
    return min(h, w) >= least


def image_encoder(space: spaces.Box, image_channels: str, features: int) -> nn.Module | None:
    """The CNN ``policy: auto`` gives uint8 images of ``space`` (the rule docs/ppo.md states): the Nature CNN from
    36 × 36 pixels, the small CNN from 4 × 4, below that None (flattened into the MLP)."""
    if fits_nature_cnn(space, image_channels):
        return NatureCNN(space, image_channels, features)
    if fits_nature_cnn(space, image_channels, SMALL_MIN_SIZE):
        return SmallCNN(space, image_channels, features=min(features, 128))
    return None


def channels_first(shape: tuple[int, ...], where: str = "auto") -> bool:
    """Whether an image of ``shape`` is [C, H, W] (True) or [H, W, C] (False); a 2-D image has one channel.
    ``auto`` takes the end whose size is ≤ 4 while the other end's is not; anything else is ambiguous and
    names ``image_channels`` (first | last) as the way out."""
    if len(shape) == 2 or where == "first":
        return len(shape) == 3
    if where == "last":
        return False
    first, last = shape[0] <= 4, shape[-1] <= 4
    if first != last:
        return first
    raise ConfigError(
        f"cannot tell where the channels of the image observations {shape} are (both ends "
        f"{'are' if first else 'are not'} ≤ 4); set image_channels=first ([C, H, W]) or last ([H, W, C])"
    )


def image_chw(shape: tuple[int, ...], first: bool) -> tuple[int, int, int]:
    """(channels, height, width) of an image of ``shape``: ``[H, W]`` (one channel), ``[C, H, W]`` (``first``) or
    ``[H, W, C]``."""
    if len(shape) == 2:
        return 1, shape[0], shape[1]
    return (shape[0], shape[1], shape[2]) if first else (shape[2], shape[0], shape[1])


def image_geometry(
    space: spaces.Box, image_channels: str, least: int, net: str, fix: str
) -> tuple[bool, int, int, int]:
    """(channels first?, C, H, W) of the images of ``space``; a ConfigError naming ``net`` and ``fix`` when they
    are under ``least`` × ``least`` pixels."""
    shape = tuple(space.shape)
    first = channels_first(shape, image_channels)
    c, h, w = image_chw(shape, first)
    if min(h, w) < least:
        raise ConfigError(f"the {net} needs images of at least {least}×{least} pixels, got {h}×{w}; {fix}")
    return first, c, h, w


def as_nchw(obs: Tensor, flat_2d: bool, first: bool) -> Tensor:
    """Images ``[B, H, W]``, ``[B, C, H, W]`` (``first``) or ``[B, H, W, C]`` as ``[B, C, H, W]``."""
    return obs.unsqueeze(1) if flat_2d else (obs if first else obs.permute(0, 3, 1, 2))


def init_orthogonal(module: nn.Module) -> None:
    """Orthogonal weights (gain √2) and zero biases for every conv and linear layer of ``module``."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            assert m.bias is not None  # built with bias=True
            nn.init.orthogonal_(m.weight, math.sqrt(2))
            nn.init.zeros_(m.bias)


class NatureCNN(nn.Module):
    """The Nature-DQN CNN over images ``[B, C, H, W]`` or ``[B, H, W, C]`` (uint8 scaled to [0, 1]) → ``[B, 512]``."""

    def __init__(self, space: spaces.Box, image_channels: str = "auto", features: int = 512) -> None:
        super().__init__()
        fix = "resize them (gymnasium.wrappers.ResizeObservation) or pass your own features_extractor"
        self.first, c, h, w = image_geometry(space, image_channels, NATURE_MIN_SIZE, "Nature CNN", fix)
        self.flat_2d = len(space.shape) == 2
        self.scale = 1 / 255 if space.dtype == np.uint8 else 1.0
        self.convs = nn.Sequential(
            nn.Conv2d(c, 32, 8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.convs(torch.zeros(1, c, h, w)).shape[1]
        self.linear = nn.Sequential(nn.Linear(flat, features), nn.ReLU())
        init_orthogonal(self)
        self.features_dim = features
        self.compute_dtype = torch.float32  # set_cnn_precision changes it

    def forward(self, obs: Tensor) -> Tensor:
        x = as_nchw(obs, self.flat_2d, self.first)
        if x.device.type == "cpu":  # oneDNN's channels-last convs: a PPO minibatch step 1.3-1.5× faster on this CPU
            x = x.contiguous(memory_format=torch.channels_last)  # (benchmarks/cnn_layouts.py); on the uint8 frames,
        # before the copy to the compute dtype (which keeps the layout): one temporary, scaled in place when it is new
        dtype = self.compute_dtype
        x = x.to(dtype).mul_(self.scale) if obs.dtype == torch.uint8 else x.to(dtype) * self.scale
        if dtype == torch.float32:
            features: Tensor = self.linear(self.convs(x))
            return features
        with torch.autocast(x.device.type, dtype=dtype):
            features = self.linear(self.convs(x))
            return features.float()


class SmallCNN(nn.Module):
    """A CNN for small images such as MiniGrid's 7 × 7 × 3 view: three 2×2 convs of stride 1 (16, 32, 64 channels,
    ReLU), a ``features``-unit layer, ReLU, orthogonal init (gain √2); ``[B, C, H, W]`` or ``[B, H, W, C]`` →
    ``[B, features]``. uint8 values are scaled by 1/255, as the Nature CNN's. The layer sizes are the small
    convolutional net MiniGrid's users train (each 2×2 conv sees a cell and its neighbours; no stride, so a
    7-cell view keeps 4 × 4 positions)."""

    def __init__(self, space: spaces.Box, image_channels: str = "auto", features: int = 128) -> None:
        super().__init__()
        fix = "set policy=mlp (flattened) or pass your own features_extractor"
        self.first, c, h, w = image_geometry(space, image_channels, SMALL_MIN_SIZE, "small CNN", fix)
        self.flat_2d = len(space.shape) == 2
        self.scale = 1 / 255 if is_image(space) else 1.0  # uint8 pixels
        layers: list[nn.Module] = []
        for c_in, c_out in ((c, 16), (16, 32), (32, 64)):
            layers += [nn.Conv2d(c_in, c_out, 2), nn.ReLU()]
        self.convs = nn.Sequential(*layers, nn.Flatten())
        self.linear = nn.Sequential(nn.Linear(64 * (h - 3) * (w - 3), features), nn.ReLU())
        init_orthogonal(self)
        self.features_dim = features

    def forward(self, obs: Tensor) -> Tensor:
        x = as_nchw(obs, self.flat_2d, self.first)
        features: Tensor = self.linear(self.convs(x.float() * self.scale))
        return features


def image_channels_param() -> Any:
    """The ``image_channels`` config field every trainer that builds the Nature CNN has."""
    return param(
        "auto",
        "where an image's channels are: auto (the end of size ≤ 4), first, last",
        choices=("auto", "first", "last"),
    )


def cnn_precision_param() -> Any:
    """The ``cnn_precision`` config field every trainer that builds the Nature CNN has (:func:`set_cnn_precision`)."""
    return param(
        "float32",
        "what the Nature CNN computes in: bfloat16 runs its convs under autocast (weights, gradients, heads and "
        "PPO's ratio stay float32), a minibatch step 1.36x faster on a CPU with native bf16",
        choices=tuple(CNN_PRECISIONS),
    )


def set_cnn_precision(module: nn.Module, precision: str) -> None:
    """Make every Nature CNN in ``module`` compute in ``precision`` (``float32`` or ``bfloat16``, see the module's
    docstring). A ConfigError when bfloat16 is asked of a module without one, where it would change nothing."""
    cnns = [m for m in module.modules() if isinstance(m, NatureCNN)]
    if precision != "float32" and not cnns:
        raise ConfigError(
            f"cnn_precision={precision} applies to the Nature CNN, and this policy has none (policy=cnn, or image "
            "observations with policy=auto, has one); remove cnn_precision"
        )
    if precision == "bfloat16" and not torch.cuda.is_available() and not _cpu_has_native_bf16():
        warnings.warn(
            "cnn_precision=bfloat16 on a CPU without native bf16 instructions (AVX512-BF16 or AMX) is emulated and "
            "slower than float32; keep cnn_precision=float32 here",
            RunWarning,
            stacklevel=2,
        )
    for cnn in cnns:
        cnn.compute_dtype = CNN_PRECISIONS[precision]


def _cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (torch has no public query for it)."""
    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(probe()) if probe is not None else True


class DictEncoder(nn.Module):
    """One encoder per key of a Dict space, over the flat row the env gives (:class:`~proxrl.envs.flat_dict.
    DictLayout`, which takes it apart again): a CNN for image keys (:func:`image_encoder`; ``cnn=False``: none,
    ``policy: mlp``), the values themselves for the others, as float32; outputs concatenated ``[B, Σ F_k]`` in the
    space's key order."""

    def __init__(self, space: spaces.Dict, image_channels: str = "auto", cnn: bool = True) -> None:
        super().__init__()
        self.layout = DictLayout(space)
        self.encoders = nn.ModuleDict()
        width = 0
        for key, sub in space.spaces.items():
            encoder = image_encoder(sub, image_channels, features=256) if cnn and is_image(sub) else None
            if encoder is not None:  # SB3's CombinedExtractor: 256 features an image
                self.encoders[key] = encoder
                width += int(cast(Any, encoder).features_dim)
            else:
                width += int(spaces.flatdim(sub))
        self.features_dim = width

    def forward(self, obs: Tensor) -> Tensor:
        parts = []
        for key, values in self.layout.unflatten(obs).items():
            if key in self.encoders:  # the image's raw 0–255 values; the CNN scales them
                parts.append(self.encoders[key](values))
            else:
                parts.append(values.reshape(values.shape[0], -1).float())
        return torch.cat(parts, dim=1)


class DictInput(nn.Module):
    """A user's features extractor for a Dict space, handed each key's values (``{key: [B, *shape]}``, as SB3
    hands its extractors a dict) rather than the flat row the env gives."""

    def __init__(self, module: nn.Module, space: spaces.Dict) -> None:
        super().__init__()
        self.module = module
        self.layout = DictLayout(space)

    def forward(self, obs: Tensor) -> Tensor:
        features: Tensor = self.module(self.layout.unflatten(obs))
        return features


def register_class(cls: type) -> str:
    """The ``module:Class`` path of a features-extractor class passed as an object (:func:`config.object_path`:
    this process finds it by that path)."""
    if not issubclass(cls, nn.Module):
        raise ConfigError(f"features_extractor {cls.__name__} is not a torch.nn.Module class")
    return object_path(cls)


def load_class(path: str) -> type[nn.Module]:
    """The class ``module:Class`` names, with a clear error when it cannot be imported."""
    found = registered_object(path)
    if found is not None:  # registered by register_class, which checked that it is an nn.Module class
        return cast(type[nn.Module], found)
    module, sep, name = path.partition(":")
    if not sep or not module or not name:
        raise ConfigError(f"features_extractor must be 'module:Class', got {path!r}")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"features_extractor {path!r} cannot be imported: {e}") from None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ConfigError(f"features_extractor {path!r} is not a torch.nn.Module class")
    return cls


def build_encoder(
    space: spaces.Space[Any],
    policy: str,
    image_channels: str = "auto",
    features_extractor: str | None = None,
    features_extractor_kwargs: dict[str, Any] | None = None,
    dict_space: spaces.Dict | None = None,
) -> nn.Module | None:
    """The encoder ``policy`` names for observations of ``space`` (``dict_space``: the Dict space a flattened one
    came from), or None for the flatten-into-the-MLP path. ``auto``: ``custom`` when a features_extractor is
    given, the Dict encoder for Dict spaces, for uint8 images the CNN of :func:`image_encoder` (the Nature CNN from
    36 × 36 pixels, the small CNN from 4 × 4), else flattening."""
    if policy == "auto":
        policy = "custom" if features_extractor else "dict" if dict_space is not None else "image"
    if policy == "image":  # auto on anything else than a Dict: a CNN for uint8 images, by size (or flattened)
        return image_encoder(space, image_channels, features=512) if is_image(space) else None
    if policy == "custom":
        if not features_extractor:
            raise ConfigError("policy=custom needs features_extractor='module:Class' (an nn.Module class)")
        module = load_class(features_extractor)(dict_space or space, **(features_extractor_kwargs or {}))
        draw: Callable[[], np.ndarray] = space.sample
        if dict_space is not None:
            module = DictInput(module, dict_space)
            layout = module.layout
            draw = lambda: layout.flatten(dict_space.sample())  # noqa: E731 - rows of real observations
        with torch.no_grad():
            out: Tensor = module(torch.as_tensor(np.stack([draw(), draw()])))
        if out.dim() != 2 or out.shape[0] != 2:
            raise ConfigError(
                f"features_extractor {features_extractor} must map [B, ...] to [B, F], gave {tuple(out.shape)}"
            )
        # the width the actor-critic reads, set on the user's class (nn.Module's __setattr__ is typed for tensors
        # and modules only; at run time it takes any value)
        module.features_dim = int(out.shape[1])  # type: ignore[assignment]
        return module
    if policy == "cnn":
        if not isinstance(space, spaces.Box) or len(space.shape) not in (2, 3):
            raise ConfigError(f"policy=cnn needs image observations (a 2-D or 3-D Box), got {space}")
        return NatureCNN(space, image_channels)
    if policy == "dict":
        assert dict_space is not None
        return DictEncoder(dict_space, image_channels)
    if dict_space is not None and DictLayout(dict_space).packed:  # the keys' bytes: taken apart, every key flat
        return DictEncoder(dict_space, image_channels, cnn=False)
    return None
