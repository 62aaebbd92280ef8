"""Torch layer initialisation shared by every model Curate trains (selection proxies, set
models, the fan-out teacher, the diffusion retriever, the image CNN): draws come from an
explicit ``torch.Generator``, never from torch's global RNG."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def init_linear_layers(module: nn.Module, generator: torch.Generator | None) -> nn.Module:
    """Re-draw every Linear layer from ``generator``: W ~ U(±1/√fan_in), b = 0 (torch's own
    init draws from the global RNG, which Curate never touches)."""
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.Linear):
                bound = 1.0 / np.sqrt(layer.in_features)
                layer.weight.uniform_(-bound, bound, generator=generator)
                layer.bias.zero_()
    return module


def init_conv_layers(module: nn.Module, generator: torch.Generator | None) -> nn.Module:
    """Re-draw every Conv2d layer from ``generator`` the same way: W ~ U(±1/√fan_in) with
    fan_in = in_channels × kernel height × kernel width (what torch's default init amounts
    to), b = 0. Linear layers are left to ``init_linear_layers``."""
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.Conv2d):
                fan_in = layer.in_channels // layer.groups * int(np.prod(layer.kernel_size))
                bound = 1.0 / np.sqrt(fan_in)
                layer.weight.uniform_(-bound, bound, generator=generator)
                if layer.bias is not None:
                    layer.bias.zero_()
    return module
