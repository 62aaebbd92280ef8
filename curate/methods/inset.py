"""Select from every ground set with a trained neural set function (INSET, Xie et al.,
ICLR 2024, or EquiVSet, Ou et al., NeurIPS 2022 — whichever ``--model`` holds).

The dataset's ``--group-column`` names the ground sets; for each, ψ (the mean-field marginals
of the learned set function) is computed over its items and the items with ψ > ``threshold``
are selected (``k=N`` takes the top N of each set instead). Across ground sets, picks are
ranked by ψ and cut at the budget; fewer rows than the budget is normal (``exact_budget`` is
False): the model decides how many items each set deserves.
"""

from __future__ import annotations

import numpy as np
import torch

from curate.checks import check_int
from curate.errors import InvalidParameterError
from curate.inputs import SelectionInput
from curate.selector import Needs, Picks, Selector, register


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
        if not isinstance(self.threshold, (int, float)) or not 0 < self.threshold < 1:
            raise InvalidParameterError(f"inset: threshold must be in (0, 1); "
                                        f"got {self.threshold!r}")
        if self.k is not None:
            check_int(self.name, "k", self.k)
        check_int(self.name, "samples", self.samples)
        check_int(self.name, "steps", self.steps)

    def _select(self, data: SelectionInput, k: int, rng: np.random.Generator) -> Picks:
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
