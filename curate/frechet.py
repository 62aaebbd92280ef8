"""Fréchet distance between two sets of feature vectors (as in FID), from sufficient
statistics, so that adding or removing a group costs O(d²) rather than a pass over the data.

    FD(A, B) = ‖μ_A − μ_B‖² + Tr(Σ_A + Σ_B − 2 (Σ_A Σ_B)^{1/2})

Tr((Σ_A Σ_B)^{1/2}) is computed as Σ √λ_i of the symmetric PSD matrix √Σ_A Σ_B √Σ_A (eigh),
which avoids the complex round-off of a general ``sqrtm``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Moments:
    """n, Σx (d,), Σxxᵀ (d, d) of a set of vectors; add/subtract sets by adding moments."""

    n: float
    s1: np.ndarray
    s2: np.ndarray

    @classmethod
    def of(cls, X: np.ndarray) -> Moments:
        X = np.asarray(X, dtype=np.float64)
        return cls(float(len(X)), X.sum(axis=0), X.T @ X)

    def __add__(self, other: Moments) -> Moments:
        return Moments(self.n + other.n, self.s1 + other.s1, self.s2 + other.s2)

    def __sub__(self, other: Moments) -> Moments:
        return Moments(self.n - other.n, self.s1 - other.s1, self.s2 - other.s2)

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        mu = self.s1 / self.n
        cov = self.s2 / self.n - np.outer(mu, mu)
        return mu, (cov + cov.T) / 2


def _sqrt_psd(C: np.ndarray) -> np.ndarray:
    w, V = np.linalg.eigh(C)
    return (V * np.sqrt(np.clip(w, 0, None))) @ V.T


def frechet_from_moments(a: Moments, b: Moments) -> float:
    mu_a, ca = a.mean_cov()
    mu_b, cb = b.mean_cov()
    ra = _sqrt_psd(ca)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(ra @ cb @ ra), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * cross)


def frechet_distance(A: np.ndarray, B: np.ndarray) -> float:
    return frechet_from_moments(Moments.of(A), Moments.of(B))
