"""The small torch models Curate trains itself: the proxy (for signals), the fixed
downstream classifier (for evaluation) and the model a dynamic pruner trains. One home, so
all of them use the same definitions. Every model maps X (n, dim) float32 to logits
(n, n_classes).

- ``softmax``: multinomial logistic regression, logits = X W + b.
- ``mlp``: one hidden layer (ReLU), logits = relu(X W1 + b1) W2 + b2.
- ``cnn``: for flat square images, dim = side² (784 for 28×28 Fashion-MNIST), side ≥ 4:
  X is viewed as (n, 1, side, side), then Conv 1→c1 3×3 (padding 1), MaxPool 2, ReLU,
  Conv c1→c2 3×3 (padding 1), MaxPool 2, ReLU → (n, c2, side//4, side//4), flattened,
  Linear → n_classes. Conv parameters are kept channels_last (faster on CPU). The default
  (c1, c2) = (16, 32) trains an epoch of 10,000 28×28 images (batch 256, Adam) in ~3 s on
  one free CPU core.

Initialisation draws from an explicit ``torch.Generator`` (no global RNG state):
W ~ U(±1/√fan_in), b = 0 for Linear and Conv2d layers alike (``softmax`` starts at zero).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from core.checks import check_int, is_int
from core.errors import InvalidParameterError
from core.nn import init_conv_layers, init_linear_layers  # noqa: F401  (re-exported)

MODEL_KINDS = ("softmax", "mlp", "cnn")


def make_model(kind: str, dim: int, n_classes: int, *, hidden: int = 256,
               channels: tuple[int, int] = (16, 32),
               generator: torch.Generator | None = None) -> nn.Module:
    """A fresh model of ``kind`` (one of ``MODEL_KINDS``) for inputs of ``dim`` features;
    ``hidden`` sizes the ``mlp``, ``channels`` the two ``cnn`` conv layers."""
    if kind == "softmax":
        model = nn.Linear(dim, n_classes)
        with torch.no_grad():
            model.weight.zero_()
            model.bias.zero_()
        return model
    if kind == "mlp":
        model = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))
        return init_linear_layers(model, generator)
    if kind == "cnn":
        return make_cnn(dim, n_classes, channels=channels, generator=generator)
    raise InvalidParameterError(f"model must be one of {', '.join(MODEL_KINDS)}; got {kind!r}")


def image_side(dim: int) -> int:
    """The side of the square image a flat row of ``dim`` pixels holds (dim = side²)."""
    side = math.isqrt(int(dim)) if is_int(dim) and dim > 0 else 0
    if side * side != dim or side < 4:
        raise InvalidParameterError("model 'cnn' needs flat square images: dim must be "
                                    f"side² with side ≥ 4 (16, 25, ..., 784 for 28×28); "
                                    f"got dim={dim!r}")
    return side


def make_cnn(dim: int, n_classes: int, *, channels: tuple[int, int] = (16, 32),
             generator: torch.Generator | None = None) -> nn.Module:
    """The ``cnn`` model (shapes in the module docstring)."""
    side = image_side(dim)
    c1, c2 = channels
    check_int("cnn", "channels[0]", c1)
    check_int("cnn", "channels[1]", c2)
    # Max-pool before ReLU is the same function as after (max commutes with a monotone map)
    # with a quarter of the ReLUs; channels_last makes the CPU conv and pool kernels ~1.6x
    # faster than NCHW.
    model = nn.Sequential(
        nn.Unflatten(1, (1, side, side)),
        nn.Conv2d(1, c1, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),
        nn.Conv2d(c1, c2, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),
        nn.Flatten(), nn.Linear(c2 * (side // 4) ** 2, n_classes))
    init_linear_layers(init_conv_layers(model, generator), generator)
    return model.to(memory_format=torch.channels_last)


def fit_softmax_lbfgs(X: np.ndarray, y: np.ndarray, n_classes: int,
                      weights: np.ndarray | None = None, *, l2: float = 1e-4,
                      max_iter: int = 200) -> nn.Module:
    """Deterministic full-batch L-BFGS fit of multinomial logistic regression.

    Minimises Σ_i w_i·CE(x_i, y_i) / Σ_i w_i + (l2/2)·‖W‖² (bias unpenalised), from zeros.
    Shapes: X (n, d) float32, y (n,) int64 in [0, n_classes), weights (n,) ≥ 0 or None.
    """
    Xt = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
    w = (torch.ones(len(yt)) if weights is None
         else torch.as_tensor(np.asarray(weights, dtype=np.float32)))
    w = w / w.sum()
    model = make_model("softmax", Xt.shape[1], n_classes)
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=max_iter,
                            history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-6, tolerance_change=1e-9)
    ce = nn.CrossEntropyLoss(reduction="none")

    def closure():
        opt.zero_grad()
        loss = (ce(model(Xt), yt) * w).sum() + 0.5 * l2 * model.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return model


@torch.no_grad()
def predict(model: nn.Module, X: np.ndarray, batch_size: int | None = None) -> np.ndarray:
    """Predicted classes (n,) int64 for X (n, dim), in batches of ``batch_size`` rows; by
    default 65,536, or 1,024 for a model with conv layers, whose activations are ~16× the
    input (one 10,000-image batch would allocate ~0.5 GB per layer, and be slower)."""
    if batch_size is None:
        conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
        batch_size = 1024 if conv else 65536
    model.eval()
    out = [model(torch.as_tensor(np.ascontiguousarray(X[i:i + batch_size], dtype=np.float32)))
           .argmax(1).numpy() for i in range(0, len(X), batch_size)]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def accuracy(model: nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    return float((predict(model, X) == np.asarray(y)).mean())
