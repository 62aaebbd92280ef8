"""The small torch models Curate trains itself: the proxy (for signals) and the fixed
downstream classifier (for evaluation). One home, so both use the same definitions.

- ``softmax``: multinomial logistic regression, logits = X W + b.
- ``mlp``: one hidden layer (ReLU), logits = relu(X W1 + b1) W2 + b2.

Initialisation draws from an explicit ``torch.Generator`` (no global RNG state).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from core.errors import InvalidParameterError
from core.nn import init_linear_layers  # noqa: F401  (re-exported)

MODEL_KINDS = ("softmax", "mlp")


def make_model(kind: str, dim: int, n_classes: int, *, hidden: int = 256,
               generator: torch.Generator | None = None) -> nn.Module:
    if kind == "softmax":
        model = nn.Linear(dim, n_classes)
        with torch.no_grad():
            model.weight.zero_()
            model.bias.zero_()
        return model
    if kind == "mlp":
        model = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))
        return init_linear_layers(model, generator)
    raise InvalidParameterError(f"model must be one of {', '.join(MODEL_KINDS)}; got {kind!r}")


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
def predict(model: nn.Module, X: np.ndarray, batch_size: int = 65536) -> np.ndarray:
    model.eval()
    out = [model(torch.as_tensor(np.ascontiguousarray(X[i:i + batch_size], dtype=np.float32)))
           .argmax(1).numpy() for i in range(0, len(X), batch_size)]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def accuracy(model: nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    return float((predict(model, X) == np.asarray(y)).mean())
