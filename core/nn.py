"""Torch layer initialisation shared by every model Curate trains (selection proxies, set
models, the fan-out teacher, the diffusion retriever): draws come from an explicit
``torch.Generator``, never from torch's global RNG."""

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
