"""Models: an MLP and a small convnet, with marked slots where a normalizer goes.

Every hidden layer is `weight layer -> NormSlot -> activation`. A NormSlot is
an identity until `oplab.norms.apply` swaps in batch norm or mean-only batch
norm, so one model definition serves every normalization arm.
"""

from __future__ import annotations

import torch
from torch import nn

from oplab.config import ModelConfig
from oplab.registry import Registry

MODELS = Registry("model")
ACTIVATIONS = Registry("activation")

ACTIVATIONS.register("relu")(nn.ReLU)
ACTIVATIONS.register("tanh")(nn.Tanh)
ACTIVATIONS.register("sigmoid")(nn.Sigmoid)
ACTIVATIONS.register("softsign")(nn.Softsign)
ACTIVATIONS.register("linear")(nn.Identity)


class NormSlot(nn.Identity):
    """Where a normalizer of `features` channels goes (spatial: 2-D feature maps)."""

    def __init__(self, features: int, spatial: bool = False):
        super().__init__()
        self.features = features
        self.spatial = spatial

    def extra_repr(self) -> str:
        return f"features={self.features}, spatial={self.spatial}"


def build(cfg: ModelConfig, input_shape: tuple[int, ...], out_dim: int) -> nn.Module:
    """The model of a trial config for inputs of `input_shape` and `out_dim` outputs."""
    if cfg.activation not in ACTIVATIONS:
        ACTIVATIONS[cfg.activation]  # raises, listing the valid names
    return MODELS.build(
        cfg.name, input_shape=input_shape, out_dim=out_dim, depth=cfg.depth, width=cfg.width,
        activation=cfg.activation, **cfg.opts,
    )


def weight_layers(model: nn.Module) -> list[nn.Module]:
    """Linear and convolution layers in forward (registration) order."""
    return [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d)]


@MODELS.register("mlp")
def mlp(*, input_shape, out_dim, depth, width, activation) -> nn.Module:
    """`depth` hidden layers of `width` units, then a linear read-out."""
    n_in = 1
    for s in input_shape:
        n_in *= s
    layers: list[nn.Module] = [nn.Flatten()]
    for _ in range(depth):
        layers += [nn.Linear(n_in, width), NormSlot(width), ACTIVATIONS.build(activation)]
        n_in = width
    layers.append(nn.Linear(n_in, out_dim))
    return nn.Sequential(*layers)


@MODELS.register("convnet")
def convnet(*, input_shape, out_dim, depth, width, activation) -> nn.Module:
    """`depth` 3x3 conv blocks; 2x2 max-pool and doubled channels after every second block;
    global average pooling and a linear read-out. For 28x28 digits, depth 4 and width 16
    give 16-16-32-32 channels (about 24k parameters)."""
    if len(input_shape) != 3:
        raise ValueError(f"convnet needs (channels, height, width) inputs, got shape {input_shape}")
    c_in, size = input_shape[0], min(input_shape[1:])
    c_out = width
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), NormSlot(c_out, spatial=True),
                   ACTIVATIONS.build(activation)]
        c_in = c_out
        if i % 2 == 1 and size >= 4:
            layers.append(nn.MaxPool2d(2))
            size //= 2
            c_out *= 2
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, out_dim)]
    return nn.Sequential(*layers)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def forward_inputs(model: nn.Module, x: torch.Tensor, layers: list[nn.Module]) -> list[torch.Tensor]:
    """The outputs of `layers` on a batch, collected with forward hooks that are then removed."""
    outs: dict[int, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, i=i: outs.__setitem__(i, out.detach()))
             for i, m in enumerate(layers)]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return [outs[i] for i in range(len(layers))]
