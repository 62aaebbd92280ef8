"""Select from every ground set with a trained neural set function (INSET, Xie et al.,
ICLR 2024, or EquiVSet, Ou et al., NeurIPS 2022 — whichever ``--model`` holds).

The dataset's ``--group-column`` names the ground sets; for each, ψ (the mean-field marginals
of the learned set function) is computed over its items and the items with ψ > ``threshold``
are selected (``k=N`` takes the top N of each set instead). Across ground sets, picks are
ranked by ψ and cut at the budget; fewer rows than the budget is normal (``exact_budget`` is
False): the model decides how many items each set deserves.

Bounds checked before any work: ``steps`` ≤ 1000 (each is a full mean-field update), and
``samples`` × the largest ground set × the model's width must fit ``check_memory`` (one
forward pass holds several (samples, items, hidden) tensors).
"""

from __future__ import annotations

import numpy as np

from curate.checks import check_int, check_memory, check_number
from curate.inputs import SelectionInput
from curate.selector import Needs, Picks, Selector, register

MAX_STEPS = 1000  # mean-field updates per ground set (the papers use 1–5)


@register("inset")
class InsetSelector(Selector):
    """Neural subset selection with a trained INSET/EquiVSet model (per ground set)."""

    needs = Needs(embeddings=True, groups=True, model=True)
    exact_budget = False

    def __init__(self, *, threshold: float = 0.5, k: int | None = None, samples: int = 5,
                 steps: int = 3):
        self.threshold = threshold
        self.k = k
        self.samples = samples
        self.steps = steps

    def _check_params(self) -> None:
        check_number(self.name, "threshold", self.threshold, 0.0, 1.0, low_open=True,
                     high_open=True)
        if self.k is not None:
            check_int(self.name, "k", self.k)
        check_int(self.name, "samples", self.samples)
        check_int(self.name, "steps", self.steps, 1, MAX_STEPS)

    def _check_input(self, data: SelectionInput) -> None:
        # one forward pass holds ~12 float32 tensors of (samples, |ground set|, hidden)
        largest = int(np.unique(data.groups, return_counts=True)[1].max())
        phi = getattr(data.model, "phi", None)
        hidden = int(getattr(phi[0], "out_features", 128)) if phi is not None else 128
        check_memory(f"inset: samples={self.samples} for ground sets of up to {largest} items",
                     48.0 * self.samples * largest * hidden, "use fewer samples")

    def _select(self, data: SelectionInput, k: int, rng: np.random.Generator) -> Picks:
        import torch  # here, not at import: the registry loads without torch

        gen = torch.Generator().manual_seed(int(rng.integers(2**31 - 1)))
        model = data.model
        model.eval()
        picks, psis = [], []
        with torch.no_grad():
            for g in np.unique(data.groups):
                rows = np.flatnonzero(data.groups == g)
                x = torch.as_tensor(np.asarray(data.embeddings[rows], np.float32))[None]
                psi = model(x, steps=self.steps, samples=self.samples, generator=gen)[0].numpy()
                if self.k is not None:
                    keep = np.argsort(-psi, kind="stable")[: self.k]
                else:
                    keep = np.flatnonzero(psi > self.threshold)
                    if len(keep) == 0:
                        keep = np.array([int(np.argmax(psi))])
                picks.append(rows[keep])
                psis.append(psi[keep])
        positions, scores = np.concatenate(picks), np.concatenate(psis)
        order = np.argsort(-scores, kind="stable")[:k]
        return Picks(positions=positions[order], scores=scores[order],
                     info={"ground_sets": int(len(np.unique(data.groups))),
                           "picked_before_budget": int(len(positions))})
