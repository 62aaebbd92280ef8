"""The papers' reproducible (V, S*) tasks for neural subset selection, generated offline.

EquiVSet (Ou et al., NeurIPS 2022, §5.1 and its reference repository's ``data_loader``) and
INSET (Xie et al., ICLR 2024) evaluate on synthetic sets and set anomaly detection. Our
generators are written from the papers' description and the repository's shapes, vectorised
over sets; each split is drawn with its own seed (the reference draws train/val/test
independently too).

``gaussian`` — two components N(±(1/√2, 1/√2), 0.5²·I) in 2-D. A ground set picks its normal
component uniformly; V = 100 points from it, of which 10 positions (uniform) are replaced by
points of the other component; S* = those 10. Random MJC ≈ 0.055.

``moons`` — sklearn's two moons (each moon's 100 points evenly spaced on its arc, as
``make_moons`` lays them out, Gaussian noise 0.1), scaled ×2 and shifted by (−1, −0.2) as the
reference does. V = the 100 points of one moon (uniform), 10 positions replaced by points of
the other moon; S* = those 10.

``fmnist-anomaly`` — built like the paper's Double-MNIST / CelebA set anomaly task: V = 10
Fashion-MNIST images of one class (uniform), of which |S*| ∈ {2, 3} (uniform) positions are
replaced by images of other classes (each drawn uniformly from every image not of the normal
class); S* = the odd ones. Features are **fixed PCA features** (64 components of the
pixels/255, fit on the training images only) — not a CNN trained inside the set model, which
the papers use; that is our CPU-sized simplification. Test sets draw from the test images.

Shapes: ``SubsetData.features`` (B, V, d) float32, ``targets`` (B, V) float32 in {0, 1},
``items`` (B, V) the point / image index, ``queries`` (B,) the set number.
"""

from __future__ import annotations

import numpy as np

from curate.checks import check_int, check_seed
from curate.errors import InvalidParameterError
from curate.subsets.data import SubsetData

TASKS = ("gaussian", "moons", "fmnist-anomaly")
SYNTHETIC_V, SYNTHETIC_S = 100, 10          # the reference configuration for both tasks
ANOMALY_V, ANOMALY_S = 10, (2, 3)            # Double-MNIST-like: 10 images, 2–3 odd ones
PCA_DIMS = 64


def _replace(normal: np.ndarray, odd: np.ndarray, s_size: np.ndarray,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Put ``odd[b, :s_size[b]]`` at ``s_size[b]`` uniform positions of ``normal[b]``.
    normal (B, V, ...), odd (B, S_max, ...) → (features, targets (B, V))."""
    B, V = normal.shape[:2]
    # a uniform random subset of positions per set: the first s of a random permutation
    perm = np.argsort(rng.random((B, V)), axis=1)
    slot = np.arange(odd.shape[1])[None, :] < s_size[:, None]           # (B, S_max)
    rows = np.broadcast_to(np.arange(B)[:, None], slot.shape)
    out = normal.copy()
    out[rows[slot], perm[:, : odd.shape[1]][slot]] = odd[slot]
    targets = np.zeros((B, V), dtype=np.float32)
    targets[rows[slot], perm[:, : odd.shape[1]][slot]] = 1.0
    return out, targets


def gaussian_sets(n_sets: int, seed: int, *, v_size: int = SYNTHETIC_V,
                  s_size: int = SYNTHETIC_S) -> SubsetData:
    """``n_sets`` ground sets of the Gaussian-mixture task (see the module docstring)."""
    check_int("", "n_sets", n_sets)
    check_int("", "s_size", s_size, 1, v_size - 1)
    rng = np.random.default_rng(check_seed(seed))
    centres = np.array([[1.0, 1.0], [-1.0, -1.0]]) / np.sqrt(2.0)
    normal_c = rng.integers(0, 2, n_sets)
    normal = centres[normal_c][:, None, :] + 0.5 * rng.standard_normal((n_sets, v_size, 2))
    odd = centres[1 - normal_c][:, None, :] + 0.5 * rng.standard_normal((n_sets, s_size, 2))
    feats, targets = _replace(normal, odd, np.full(n_sets, s_size), rng)
    return _pack(feats, targets)


def gaussian_oracle_scores(data: SubsetData) -> np.ndarray:
    """(B, V) Bayes scores for the Gaussian task with the true centres known: the odd
    points are those furthest towards the other component, i.e. the log-likelihood ratio
    ∝ −x·c·sign(mean_V · c) with c = (1, 1)/√2 (the normal component is the majority, so the
    set's mean says which it is). Top-|S*| by these scores is the ceiling any model can
    reach on the task (the components overlap: σ = 0.5 at distance 2)."""
    c = np.array([1.0, 1.0]) / np.sqrt(2.0)
    side = np.sign(data.features.mean(1) @ c)                 # (B,) the normal component
    return -(data.features @ c) * side[:, None]


def _moon(which: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """(B, n, 2) points of moon ``which[b]`` (0 upper, 1 lower) in make_moons' layout,
    shuffled, with noise 0.1, scaled ×2 and shifted by (−1, −0.2)."""
    t = np.linspace(0.0, np.pi, n)
    upper = np.stack([np.cos(t), np.sin(t)], axis=1)
    lower = np.stack([1.0 - np.cos(t), 1.0 - np.sin(t) - 0.5], axis=1)
    base = np.where(which[:, None, None] == 0, upper[None], lower[None])     # (B, n, 2)
    order = np.argsort(rng.random((len(which), n)), axis=1)
    pts = np.take_along_axis(base, order[..., None], axis=1)
    pts = pts + 0.1 * rng.standard_normal(pts.shape)
    return pts * 2.0 + np.array([-1.0, -0.2])


def moons_sets(n_sets: int, seed: int, *, v_size: int = SYNTHETIC_V,
               s_size: int = SYNTHETIC_S) -> SubsetData:
    """``n_sets`` ground sets of the two-moons task (see the module docstring)."""
    check_int("", "n_sets", n_sets)
    check_int("", "s_size", s_size, 1, v_size - 1)
    rng = np.random.default_rng(check_seed(seed))
    which = rng.integers(0, 2, n_sets)
    normal = _moon(which, v_size, rng)
    odd = _moon(1 - which, v_size, rng)[:, :s_size]
    feats, targets = _replace(normal, odd, np.full(n_sets, s_size), rng)
    return _pack(feats, targets)


def anomaly_sets(features: np.ndarray, labels: np.ndarray, n_sets: int, seed: int, *,
                 v_size: int = ANOMALY_V, s_sizes: tuple[int, int] = ANOMALY_S) -> SubsetData:
    """Set anomaly detection over labelled items: V = ``v_size`` items of one class, |S*|
    uniform in ``s_sizes`` (inclusive) positions replaced by items of other classes.
    features (N, d), labels (N,) int. ``items`` holds the item rows."""
    check_int("", "n_sets", n_sets)
    lo, hi = s_sizes
    check_int("", "s_sizes[0]", lo, 1, v_size - 1)
    check_int("", "s_sizes[1]", hi, lo, v_size - 1)
    labels = np.asarray(labels)
    if len(labels) != len(features):
        raise InvalidParameterError(f"anomaly_sets: {len(features)} feature rows but "
                                    f"{len(labels)} labels")
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2 or counts.min() < v_size:
        raise InvalidParameterError(f"anomaly_sets needs ≥ 2 classes of ≥ {v_size} items each")
    rng = np.random.default_rng(check_seed(seed))
    order = np.argsort(labels, kind="stable")
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    cls = rng.integers(0, len(classes), n_sets)
    # normal items: v_size draws within the class (with replacement across sets, without
    # within a set: the first v_size of a random key per candidate is too big; draw and
    # redraw collisions instead)
    pick = (rng.random((n_sets, v_size)) * counts[cls][:, None]).astype(np.int64)
    pick = _distinct_rows(pick, counts[cls], rng)
    normal_rows = order[starts[cls][:, None] + pick]
    # odd items: uniform over every item not of the normal class
    others = len(labels) - counts[cls]
    j = (rng.random((n_sets, hi)) * others[:, None]).astype(np.int64)
    j = _distinct_rows(j, others, rng)
    j = j + (j >= starts[cls][:, None]) * counts[cls][:, None]   # skip the normal block
    odd_rows = order[j]
    s = rng.integers(lo, hi + 1, n_sets)
    rows, targets = _replace(normal_rows, odd_rows, s, rng)
    return SubsetData(np.asarray(features[rows], dtype=np.float32), targets,
                      rows.astype(np.int64), np.arange(n_sets))


def _distinct_rows(draw: np.ndarray, high: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Redraw repeated values within each row of ``draw`` (values in [0, high[b])) until
    every row holds distinct values; vectorised (a few passes for small rows)."""
    while True:
        srt = np.sort(draw, axis=1)
        if not (srt[:, 1:] == srt[:, :-1]).any():
            return draw
        order = np.argsort(draw, axis=1, kind="stable")
        ranked = np.take_along_axis(draw, order, axis=1)
        dup = np.zeros_like(draw, dtype=bool)
        dup_sorted = np.c_[np.zeros(len(draw), bool), ranked[:, 1:] == ranked[:, :-1]]
        np.put_along_axis(dup, order, dup_sorted, axis=1)
        fresh = (rng.random(draw.shape) * high[:, None]).astype(np.int64)
        draw = np.where(dup, fresh, draw)


def _pack(feats: np.ndarray, targets: np.ndarray) -> SubsetData:
    B, V = targets.shape
    return SubsetData(feats.astype(np.float32), targets,
                      np.broadcast_to(np.arange(V), (B, V)).copy(), np.arange(B))


def pca_features(train: np.ndarray, *others: np.ndarray, dims: int = PCA_DIMS,
                 seed: int = 0) -> list[np.ndarray]:
    """Fit a ``dims``-component PCA on ``train`` (n, p) and project it and ``others``."""
    from sklearn.decomposition import PCA

    pca = PCA(dims, random_state=check_seed(seed)).fit(train)
    return [pca.transform(a).astype(np.float32) for a in (train, *others)]


def synthetic_task(task: str, seed: int = 0, *, n_train: int = 1000, n_val: int = 1000,
                   n_test: int = 1000) -> tuple[SubsetData, SubsetData, SubsetData]:
    """(train, val, test) of ``gaussian`` or ``moons``, each split drawn with its own seed
    (derived from ``seed``); 1000 sets per split as in the reference."""
    gen = {"gaussian": gaussian_sets, "moons": moons_sets}.get(task)
    if gen is None:
        raise InvalidParameterError(f"synthetic task must be gaussian or moons; got {task!r}")
    return tuple(gen(n, split_seed(seed, i))
                 for i, n in enumerate((n_train, n_val, n_test)))  # type: ignore[return-value]


def split_seed(seed: int, split: int) -> int:
    """An independent seed for split ``split`` (0 train, 1 val, 2 test) of ``seed``."""
    return int(np.random.SeedSequence([check_seed(seed), split]).generate_state(1)[0])
