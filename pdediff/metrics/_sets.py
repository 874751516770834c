"""Distances and statistics between *sets* of samples (features or images), NumPy/SciPy only.

Every function takes arrays of shape ``(N, D)`` (``N`` samples of ``D``
features) or ``(N, ...)`` (``N`` images of any shape, flattened to
``(N, prod(...))``), computes in float64 and validates its inputs: a wrong
number of dimensions, sets with different feature sizes, too few samples or
non-finite values raise :class:`ValueError` (wrong types :class:`TypeError`)
whose message names the parameter and what is allowed.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

__all__ = [
    "frechet_distance",
    "sliced_wasserstein",
    "one_nn_accuracy",
    "precision_recall",
    "density_coverage",
    "label_statistics",
    "memorisation_ratio",
    "radial_power_spectrum",
    "spectrum_error",
]

#: Largest number of pairwise distances held in memory at once (float64: 8 bytes each).
_CHUNK_ELEMENTS = 4_000_000


# --------------------------------------------------------------------------- validation helpers


def _as_set(x: Any, name: str, *, min_samples: int = 1) -> np.ndarray:
    """``x`` as a float64 ``(N, D)`` array (trailing axes flattened), or a clear error."""
    if x is None or isinstance(x, (bool, numbers.Number, str, bytes)):
        raise TypeError(f"{name} must be an array of shape (N, D) or (N, ...) (N samples); got {type(x).__name__}")
    arr = np.asarray(x)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real numeric array (bool, integer or float); got dtype {arr.dtype}")
    if arr.ndim < 2:
        raise ValueError(
            f"{name} must have shape (N, D) or (N, ...) with at least 2 dimensions (N samples first); "
            f"got shape {arr.shape} (reshape 1-D data to (N, 1))"
        )
    if arr.shape[0] < min_samples:
        raise ValueError(f"{name} must hold at least {min_samples} samples (axis 0); got {arr.shape[0]}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty; got shape {arr.shape}")
    arr = arr.reshape(arr.shape[0], -1).astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values; all values must be finite")
    return arr


def _same_dim(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{name_a} and {name_b} must have the same number of features per sample; "
            f"got D={a.shape[1]} and D={b.shape[1]}"
        )


def _positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value}")
    return int(value)


def _rng(seed: Any) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise TypeError(f"seed must be a non-negative integer or a numpy.random.Generator; got {seed!r}")
    return np.random.default_rng(int(seed))


# --------------------------------------------------------------------------- neighbour helpers


def _kth_neighbour_radius(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row of ``x`` to its ``k``-th nearest *other* row of ``x``."""
    from scipy.spatial import cKDTree

    # Querying k+1 neighbours includes the point itself at distance 0, the smallest possible
    # distance, so column k is the k-th neighbour distance whatever order ties come back in.
    dist, _ = cKDTree(x).query(x, k=k + 1, workers=-1)
    return dist[:, k]


def _chunks(n_rows: int, n_cols: int):
    step = max(1, _CHUNK_ELEMENTS // max(n_cols, 1))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def _inside_counts(query: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """For each query row, the number of balls ``B(centres[i], radii[i])`` (closed) containing it."""
    from scipy.spatial.distance import cdist

    counts = np.empty(query.shape[0], dtype=np.int64)
    for rows in _chunks(query.shape[0], centres.shape[0]):
        counts[rows] = (cdist(query[rows], centres) <= radii[None, :]).sum(axis=1)
    return counts


# --------------------------------------------------------------------------- distances between sets


def frechet_distance(a: Any, b: Any) -> float:
    r"""Fréchet distance between Gaussians fitted to two sets of features.

    This is the formula of the Fréchet Inception Distance (FID) applied to
    whatever features are passed.  It is **not** FID, and its values are not
    comparable with published FIDs unless the features are the 2048-d pool
    features of the same Inception-v3 network: distances in a different
    feature space (e.g. :class:`~pdediff.metrics.FeatureExtractor`'s) have a
    different scale.  Report it next to its real-vs-real floor (the distance
    between two disjoint sets of real samples of the same size), because the
    estimate is biased upwards at finite ``N``.

    Parameters
    ----------
    a, b : array_like, shape (N, D) or (N, ...)
        Two sets of samples (rows); trailing axes are flattened.  Each needs
        ``N >= 2``; the sizes may differ, ``D`` must agree.

    Returns
    -------
    float
        The squared Fréchet (2-Wasserstein) distance between
        :math:`\mathcal N(\mu_a, C_a)` and :math:`\mathcal N(\mu_b, C_b)`, >= 0.

    Notes
    -----
    With sample means :math:`\mu` and unbiased (``ddof=1``) covariances :math:`C`,

    .. math::

        d^2 = \lVert\mu_a - \mu_b\rVert^2
              + \operatorname{Tr}\bigl(C_a + C_b - 2 (C_a C_b)^{1/2}\bigr)

    [Dowson82]_, [Heusel17]_.  The trace of the matrix square root is computed
    as :math:`\sum_i \sqrt{\lambda_i}` over the eigenvalues of the symmetric
    positive semi-definite matrix :math:`C_a^{1/2} C_b C_a^{1/2}` (``eigh``),
    which has the same eigenvalues as :math:`C_a C_b`.  This is exact, always
    real and stable when the covariances are singular (``N <= D``, the usual
    case for small sample sets), where ``scipy.linalg.sqrtm(C_a @ C_b)`` of the
    non-symmetric product needs the ``eps * I`` regularisation of the reference
    implementation and returns spurious imaginary parts.  Eigenvalues below zero
    (rounding) are clipped, and the result is clamped at 0.  Features beyond
    :math:`2^{\pm 250}` in magnitude are scaled by a power of two (exact) before
    the covariances are formed, so they cannot overflow; the result is scaled
    back, ``inf`` when the distance itself exceeds the float64 range.

    References
    ----------
    .. [Dowson82] D. C. Dowson, B. V. Landau, "The Fréchet distance between
       multivariate normal distributions", J. Multivariate Anal. 12(3), 1982.
    .. [Heusel17] M. Heusel, H. Ramsauer, T. Unterthiner, B. Nessler,
       S. Hochreiter, "GANs trained by a two time-scale update rule converge to a
       local Nash equilibrium", NeurIPS 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from pdediff.metrics import frechet_distance
    >>> rng = np.random.default_rng(0)
    >>> a = rng.standard_normal((500, 4))
    >>> round(frechet_distance(a, a), 10)
    0.0
    >>> round(frechet_distance(a, a + 3.0), 6)  # a shift by 3 in each of 4 dimensions: 4 * 3**2
    36.0
    """
    x = _as_set(a, "a", min_samples=2)
    y = _as_set(b, "b", min_samples=2)
    _same_dim(x, y, "a", "b")
    # Features of extreme magnitude (|x| ~ 1e200) overflow the covariances (and fail eigh): compute on
    # features scaled by a power of two (exact) into [0.5, 1), and scale the squared distance back.
    amax = max(float(np.max(np.abs(x))), float(np.max(np.abs(y))))
    if amax > 2.0**250 or 0.0 < amax < 2.0**-250:
        e = math.frexp(amax)[1]
        d2 = frechet_distance(np.ldexp(x, -e), np.ldexp(y, -e))
        with np.errstate(over="ignore", under="ignore"):
            return float(np.ldexp(d2, 2 * e))
    mu_x, mu_y = x.mean(axis=0), y.mean(axis=0)
    cx = np.atleast_2d(np.cov(x, rowvar=False))
    cy = np.atleast_2d(np.cov(y, rowvar=False))
    mean_term = float(np.sum((mu_x - mu_y) ** 2))
    trace_sqrt = _trace_sqrt_product(cx, cy)
    d2 = mean_term + float(np.trace(cx)) + float(np.trace(cy)) - 2.0 * trace_sqrt
    return max(d2, 0.0)


def _trace_sqrt_product(ca: np.ndarray, cb: np.ndarray) -> float:
    """``Tr((ca @ cb)^{1/2})`` for symmetric PSD ``ca``, ``cb`` via ``eigh`` of ``ca^{1/2} cb ca^{1/2}``."""
    w, v = np.linalg.eigh(ca)
    sqrt_a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    m = sqrt_a @ cb @ sqrt_a
    lam = np.linalg.eigvalsh((m + m.T) / 2.0)
    return float(np.sum(np.sqrt(np.clip(lam, 0.0, None))))


def sliced_wasserstein(a: Any, b: Any, *, n_projections: int = 256, seed: Any = 0) -> float:
    r"""Sliced 2-Wasserstein distance between two sets of samples.

    Projects both sets onto ``n_projections`` random unit directions and
    averages the squared 2-Wasserstein distances of the one-dimensional
    projections, which are exact (sorted samples, i.e. matched quantiles).

    Parameters
    ----------
    a, b : array_like, shape (N, D) or (N, ...)
        Two sets of samples; trailing axes are flattened.  The sizes ``N`` may
        differ (the quantile functions are then matched, see Notes); ``D`` must agree.
    n_projections : int, keyword-only
        Number of random directions :math:`\theta`, drawn uniformly on the unit
        sphere :math:`S^{D-1}` (normalised Gaussian vectors).  The Monte Carlo
        error of :math:`SW_2^2` shrinks as ``1 / sqrt(n_projections)``.
    seed : int or numpy.random.Generator, keyword-only
        Seed of the directions: the same seed gives the same directions, so
        distances of several sets to one reference are comparable.

    Returns
    -------
    float
        :math:`SW_2 = \bigl(\frac1P\sum_{p=1}^P W_2^2(\theta_p^\top a, \theta_p^\top b)\bigr)^{1/2}`,
        in the units of the samples.

    Notes
    -----
    For one-dimensional empirical distributions with quantile functions
    :math:`F_a^{-1}, F_b^{-1}`,
    :math:`W_2^2 = \int_0^1 (F_a^{-1}(q) - F_b^{-1}(q))^2\,dq`.  With equal
    sizes this is the mean squared difference of the sorted projections; with
    sizes :math:`n \ne m` the integral is evaluated exactly over the merged
    breakpoints :math:`\{i/n\} \cup \{j/m\}`, on which both quantile functions
    are constant.  A translation by :math:`v` gives
    :math:`SW_2^2 = \frac1P\sum_p (\theta_p^\top v)^2`, whose expectation over
    uniform directions is :math:`\lVert v\rVert^2 / D`; in one dimension
    :math:`SW_2 = |v|` exactly.  See [Rabin11]_, [Bonneel15]_.

    References
    ----------
    .. [Rabin11] J. Rabin, G. Peyré, J. Delon, M. Bernot, "Wasserstein
       barycenter and its application to texture mixing", SSVM 2011.
    .. [Bonneel15] N. Bonneel, J. Rabin, G. Peyré, H. Pfister, "Sliced and Radon
       Wasserstein barycenters of measures", J. Math. Imaging Vis. 51, 2015.

    Examples
    --------
    >>> import numpy as np
    >>> from pdediff.metrics import sliced_wasserstein
    >>> rng = np.random.default_rng(0)
    >>> a = rng.standard_normal((300, 1))
    >>> sliced_wasserstein(a, a)
    0.0
    >>> round(sliced_wasserstein(a, a + 2.5), 6)  # one dimension: exactly the shift
    2.5
    """
    x = _as_set(a, "a")
    y = _as_set(b, "b")
    _same_dim(x, y, "a", "b")
    p = _positive_int(n_projections, "n_projections")
    rng = _rng(seed)
    theta = rng.standard_normal((x.shape[1], p))
    theta /= np.linalg.norm(theta, axis=0, keepdims=True)
    px = np.sort(x @ theta, axis=0)
    py = np.sort(y @ theta, axis=0)
    n, m = px.shape[0], py.shape[0]
    if n == m:
        w2 = np.mean((px - py) ** 2, axis=0)
    else:
        # Both empirical quantile functions are constant between consecutive merged breakpoints.
        q = np.union1d(np.arange(n + 1) / n, np.arange(m + 1) / m)
        widths = np.diff(q)
        mid = (q[:-1] + q[1:]) / 2.0
        ix = np.minimum((mid * n).astype(np.int64), n - 1)
        iy = np.minimum((mid * m).astype(np.int64), m - 1)
        w2 = widths @ ((px[ix] - py[iy]) ** 2)
    return float(np.sqrt(max(float(np.mean(w2)), 0.0)))


# --------------------------------------------------------------------------- neighbour-based tests


def one_nn_accuracy(a: Any, b: Any) -> float:
    r"""Leave-one-out 1-nearest-neighbour two-sample test accuracy.

    Each sample of the union of ``a`` and ``b`` is classified by the set of
    its nearest other sample (Euclidean distance); the accuracy is the
    fraction classified correctly.  About 0.5 means the sets are
    indistinguishable (the best a generator can reach), 1.0 that they are
    fully separable; well below 0.5 means samples of one set sit on top of
    samples of the other (copies).

    Parameters
    ----------
    a, b : array_like, shape (N, D) or (N, ...)
        Two sets of samples, each with at least 2 samples; ``D`` must agree.
        Use sets of equal size: with ``N_a != N_b`` the chance level is no
        longer 0.5.

    Returns
    -------
    float
        Accuracy in [0, 1].

    Notes
    -----
    .. math::

        \mathrm{acc} = \frac{1}{N_a + N_b} \sum_{z \in a \cup b}
        \mathbb 1\bigl[\operatorname{set}(\operatorname{NN}(z)) = \operatorname{set}(z)\bigr],

    where :math:`\operatorname{NN}(z)` is the nearest sample of the union
    other than :math:`z` itself ([LopezPaz17]_; proposed as a generative
    model metric by [Xu18]_).  For two halves of one distribution the expected
    accuracy is :math:`(N-1)/(2N-1) \approx 0.5`.  Ties are broken by the
    k-d tree's order (``scipy.spatial.cKDTree``); exact duplicates across the
    two sets count as neighbours from the other set.

    References
    ----------
    .. [LopezPaz17] D. Lopez-Paz, M. Oquab, "Revisiting classifier two-sample
       tests", ICLR 2017.
    .. [Xu18] Q. Xu, G. Huang, Y. Yuan, C. Guo, Y. Sun, F. Wu, K. Weinberger,
       "An empirical study on evaluation metrics of generative adversarial
       networks", arXiv:1806.07755, 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from pdediff.metrics import one_nn_accuracy
    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.standard_normal((200, 2)), rng.standard_normal((200, 2))
    >>> 0.4 < one_nn_accuracy(a, b) < 0.6
    True
    >>> one_nn_accuracy(a, b + 100.0)
    1.0
    """
    from scipy.spatial import cKDTree

    x = _as_set(a, "a", min_samples=2)
    y = _as_set(b, "b", min_samples=2)
    _same_dim(x, y, "a", "b")
    z = np.concatenate([x, y])
    labels = np.concatenate([np.zeros(x.shape[0], dtype=bool), np.ones(y.shape[0], dtype=bool)])
    _, idx = cKDTree(z).query(z, k=2, workers=-1)
    own = np.arange(z.shape[0])
    # The nearest other sample: column 0 unless column 0 is the point itself (ties at distance 0).
    nn = np.where(idx[:, 0] == own, idx[:, 1], idx[:, 0])
    return float(np.mean(labels[nn] == labels))


def precision_recall(real: Any, fake: Any, *, k: int = 3) -> dict[str, float]:
    r"""Improved precision and recall of generated samples (k-NN manifold estimate).

    The support ("manifold") of each set is estimated as the union of balls
    around its samples whose radius is the distance to the ``k``-th nearest
    other sample of the same set.  *Precision* is the fraction of generated
    samples inside the real manifold (fidelity); *recall* the fraction of real
    samples inside the generated manifold (diversity).

    Parameters
    ----------
    real, fake : array_like, shape (N, D) or (N, ...)
        Real and generated samples (features); each needs more than ``k``
        samples; ``D`` must agree.
    k : int, keyword-only
        Neighbour used for the radii, ``k >= 1`` (3 in [Kynkaanniemi19]_).

    Returns
    -------
    dict
        ``{"precision": float, "recall": float}``, each in [0, 1].

    Notes
    -----
    With :math:`r_k(x)` the distance from :math:`x` to its ``k``-th nearest
    neighbour within its own set, real samples :math:`\Phi_r` and generated
    :math:`\Phi_g`,

    .. math::

        \mathrm{precision} = \frac{1}{|\Phi_g|}\sum_{y\in\Phi_g}
            \mathbb 1\bigl[\exists x\in\Phi_r: \lVert y-x\rVert \le r_k(x)\bigr],
        \qquad
        \mathrm{recall} = \frac{1}{|\Phi_r|}\sum_{x\in\Phi_r}
            \mathbb 1\bigl[\exists y\in\Phi_g: \lVert x-y\rVert \le r_k(y)\bigr].

    Outliers among the real samples inflate the real manifold (and hence
    precision); :func:`density_coverage` is less sensitive to them.
    The cost is :math:`O(N_r N_g D)` (pairwise distances in chunks).

    References
    ----------
    .. [Kynkaanniemi19] T. Kynkäänniemi, T. Karras, S. Laine, J. Lehtinen,
       T. Aila, "Improved precision and recall metric for assessing generative
       models", NeurIPS 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from pdediff.metrics import precision_recall
    >>> rng = np.random.default_rng(0)
    >>> real = rng.standard_normal((200, 3))
    >>> precision_recall(real, real)
    {'precision': 1.0, 'recall': 1.0}
    >>> precision_recall(real, real + 50.0)
    {'precision': 0.0, 'recall': 0.0}
    """
    kk = _positive_int(k, "k")
    x = _as_set(real, "real", min_samples=kk + 1)
    y = _as_set(fake, "fake", min_samples=kk + 1)
    _same_dim(x, y, "real", "fake")
    rx = _kth_neighbour_radius(x, kk)
    ry = _kth_neighbour_radius(y, kk)
    precision = float(np.mean(_inside_counts(y, x, rx) > 0))
    recall = float(np.mean(_inside_counts(x, y, ry) > 0))
    return {"precision": precision, "recall": recall}


def density_coverage(real: Any, fake: Any, *, k: int = 5) -> dict[str, float]:
    r"""Density and coverage of generated samples (Naeem et al. 2020).

    Both use balls around the *real* samples only (radius: distance to the
    ``k``-th nearest other real sample), so outlying generated samples do not
    enlarge any manifold.  *Density* counts how many real balls contain each
    generated sample (about 1 when the distributions agree; it can exceed 1);
    *coverage* is the fraction of real balls that contain at least one
    generated sample.

    Parameters
    ----------
    real, fake : array_like, shape (N, D) or (N, ...)
        Real and generated samples; ``real`` needs more than ``k`` samples,
        ``fake`` at least one; ``D`` must agree.
    k : int, keyword-only
        Neighbour used for the radii, ``k >= 1`` (5 in [Naeem20]_).

    Returns
    -------
    dict
        ``{"density": float, "coverage": float}``; density >= 0, coverage in [0, 1].

    Notes
    -----
    With :math:`B(x, r_k(x))` the closed ball around real sample :math:`x`,

    .. math::

        \mathrm{density} = \frac{1}{k\,|\Phi_g|}\sum_{y\in\Phi_g}\sum_{x\in\Phi_r}
            \mathbb 1[y \in B(x, r_k(x))],
        \qquad
        \mathrm{coverage} = \frac{1}{|\Phi_r|}\sum_{x\in\Phi_r}
            \mathbb 1\bigl[\exists y\in\Phi_g: y \in B(x, r_k(x))\bigr].

    References
    ----------
    .. [Naeem20] M. F. Naeem, S. J. Oh, Y. Uh, Y. Choi, J. Yoo, "Reliable
       fidelity and diversity metrics for generative models", ICML 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from pdediff.metrics import density_coverage
    >>> rng = np.random.default_rng(0)
    >>> real = rng.standard_normal((200, 3))
    >>> density_coverage(real, real + 50.0)
    {'density': 0.0, 'coverage': 0.0}
    >>> density_coverage(real, real)["coverage"]
    1.0
    """
    from scipy.spatial import cKDTree

    kk = _positive_int(k, "k")
    x = _as_set(real, "real", min_samples=kk + 1)
    y = _as_set(fake, "fake")
    _same_dim(x, y, "real", "fake")
    rx = _kth_neighbour_radius(x, kk)
    density = float(np.sum(_inside_counts(y, x, rx)) / (kk * y.shape[0]))
    nearest_fake, _ = cKDTree(y).query(x, k=1, workers=-1)
    coverage = float(np.mean(nearest_fake <= rx))
    return {"density": density, "coverage": coverage}


def memorisation_ratio(samples: Any, train: Any, heldout: Any) -> float:
    r"""How much closer generated samples are to the training set than new real data are.

    Parameters
    ----------
    samples : array_like, shape (N, D) or (N, ...)
        Generated samples (images or features).
    train : array_like, shape (M, D) or (M, ...)
        The training set the generator was fitted to.
    heldout : array_like, shape (L, D) or (L, ...)
        Real samples from the same distribution that were *not* used for
        training (disjoint from ``train``).

    Returns
    -------
    float
        :math:`\operatorname{median}_{s} d(s, \mathrm{train}) \,/\,
        \operatorname{median}_{h} d(h, \mathrm{train})`, where
        :math:`d(z, \mathrm{train}) = \min_{t\in\mathrm{train}}\lVert z - t\rVert`.
        About 1 for a model that generalises like fresh data; well below 1
        (towards 0) for a model that reproduces training examples; above 1
        when samples are farther from the data than real images are (poor
        fidelity, not memorisation).

    Raises
    ------
    ValueError
        If the held-out median distance is 0 (``heldout`` overlaps ``train``).

    Notes
    -----
    The held-out denominator calibrates the scale of the distance, in the
    spirit of the data-copying test of [Meehan20]_ which compares the same two
    nearest-training-neighbour distance distributions.  Medians make the ratio
    insensitive to a few outliers; use sets of similar size (the nearest
    neighbour distance depends on nothing but ``train`` and the query point,
    so the sizes of ``samples`` and ``heldout`` only affect the variance).

    References
    ----------
    .. [Meehan20] C. Meehan, K. Chaudhuri, S. Dasgupta, "A non-parametric test to
       detect data-copying in generative models", AISTATS 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from pdediff.metrics import memorisation_ratio
    >>> rng = np.random.default_rng(0)
    >>> train, heldout = rng.standard_normal((500, 4)), rng.standard_normal((200, 4))
    >>> memorisation_ratio(train[:200], train, heldout)  # copies of training examples
    0.0
    >>> 0.8 < memorisation_ratio(rng.standard_normal((200, 4)), train, heldout) < 1.25
    True
    """
    from scipy.spatial import cKDTree

    s = _as_set(samples, "samples")
    t = _as_set(train, "train")
    h = _as_set(heldout, "heldout")
    _same_dim(s, t, "samples", "train")
    _same_dim(h, t, "heldout", "train")
    tree = cKDTree(t)
    ds, _ = tree.query(s, k=1, workers=-1)
    dh, _ = tree.query(h, k=1, workers=-1)
    denominator = float(np.median(dh))
    if not denominator > 0:
        raise ValueError(
            "heldout must be disjoint from train: the median distance from heldout to its nearest training "
            "sample is 0, so the ratio is undefined"
        )
    return float(np.median(ds)) / denominator


# --------------------------------------------------------------------------- classifier labels


def label_statistics(probabilities: Any, *, n_classes: int | None = None) -> dict[str, float]:
    r"""Class balance and confidence of a classifier's predictions on a set of samples.

    Parameters
    ----------
    probabilities : array_like, shape (N, K) or (N,)
        Predicted class probabilities (rows non-negative, summing to 1 within
        1e-4, e.g. :meth:`FeatureExtractor.predict_proba
        <pdediff.metrics.FeatureExtractor.predict_proba>`), or integer
        predicted labels in ``[0, n_classes)`` (treated as one-hot rows).
    n_classes : int, keyword-only, optional
        Number of classes ``K >= 2``.  Required for integer labels; for
        probabilities it defaults to (and must equal) the number of columns.

    Returns
    -------
    dict
        ``entropy``
            Normalised entropy of the mean predicted distribution
            :math:`\bar p = \frac1N\sum_i p_i`:
            :math:`-\sum_c \bar p_c \log \bar p_c / \log K`, in [0, 1]; 1 when
            all classes are predicted equally often, 0 when one class takes all.
        ``coverage``
            Fraction of the ``K`` classes that are the arg-max of at least one sample.
        ``confidence``
            Mean over samples of the largest probability, :math:`\frac1N\sum_i \max_c p_{ic}`,
            in [1/K, 1]; low values mean ambiguous (unrecognisable) samples.

    Notes
    -----
    ``entropy`` is the marginal-entropy half of the Inception Score [Salimans16]_
    (``confidence`` stands for the conditional half), normalised so that
    it does not depend on ``K``.  Mode collapse onto a few classes lowers
    ``entropy`` and ``coverage``.

    References
    ----------
    .. [Salimans16] T. Salimans, I. Goodfellow, W. Zaremba, V. Cheung,
       A. Radford, X. Chen, "Improved techniques for training GANs", NeurIPS 2016.

    Examples
    --------
    >>> import numpy as np
    >>> from pdediff.metrics import label_statistics
    >>> label_statistics(np.eye(4)[[0, 1, 2, 3, 0, 1, 2, 3]])
    {'entropy': 1.0, 'coverage': 1.0, 'confidence': 1.0}
    >>> label_statistics(np.array([2, 2, 2]), n_classes=4)
    {'entropy': 0.0, 'coverage': 0.25, 'confidence': 1.0}
    """
    if probabilities is None or isinstance(probabilities, (bool, numbers.Number, str, bytes)):
        raise TypeError(f"probabilities must be an array of shape (N, K) or (N,); got {type(probabilities).__name__}")
    p = np.asarray(probabilities)
    if p.dtype == object or p.dtype.kind not in "biuf":
        raise TypeError(f"probabilities must be a real numeric array; got dtype {p.dtype}")
    if n_classes is not None:
        n_classes = _positive_int(n_classes, "n_classes", minimum=2)
    if p.ndim == 1:
        if p.dtype.kind not in "iu":
            raise TypeError(
                "probabilities given as 1-D must be integer class labels (shape (N,)); "
                f"got dtype {p.dtype} (pass probabilities as shape (N, K))"
            )
        if n_classes is None:
            raise ValueError("n_classes is required when probabilities are integer labels of shape (N,)")
        if p.size == 0:
            raise ValueError("probabilities must hold at least 1 sample; got 0")
        if p.min() < 0 or p.max() >= n_classes:
            raise ValueError(f"labels in probabilities must lie in [0, n_classes={n_classes}); "
                             f"got values in [{p.min()}, {p.max()}]")
        p = np.eye(n_classes)[p]
    elif p.ndim == 2:
        if p.shape[0] == 0:
            raise ValueError("probabilities must hold at least 1 sample; got 0")
        if n_classes is None:
            n_classes = p.shape[1]
            if n_classes < 2:
                raise ValueError(f"probabilities must have K >= 2 columns (classes); got shape {p.shape}")
        elif n_classes != p.shape[1]:
            raise ValueError(f"n_classes must equal the number of columns of probabilities; "
                             f"got n_classes={n_classes} and shape {p.shape}")
        p = p.astype(np.float64)
        if not np.isfinite(p).all():
            raise ValueError("probabilities contains NaN or infinite values; all values must be finite")
        if p.min() < 0 or not np.allclose(p.sum(axis=1), 1.0, rtol=0.0, atol=1e-4):
            raise ValueError("probabilities must be non-negative with rows summing to 1 (within 1e-4)")
    else:
        raise ValueError(f"probabilities must have shape (N, K) or (N,); got shape {p.shape}")
    mean = p.mean(axis=0)
    nz = mean[mean > 0]
    entropy = float(-np.sum(nz * np.log(nz)) / math.log(n_classes))
    coverage = float(np.unique(np.argmax(p, axis=1)).size / n_classes)
    confidence = float(np.mean(np.max(p, axis=1)))
    return {"entropy": float(np.clip(entropy, 0.0, 1.0)) + 0.0, "coverage": coverage, "confidence": confidence}


# --------------------------------------------------------------------------- power spectra


def _as_images(x: Any, name: str) -> np.ndarray:
    if x is None or isinstance(x, (bool, numbers.Number, str, bytes)):
        raise TypeError(f"{name} must be an array of images of shape (..., H, W); got {type(x).__name__}")
    arr = np.asarray(x)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real numeric array (bool, integer or float); got dtype {arr.dtype}")
    if arr.ndim < 2:
        raise ValueError(f"{name} must have shape (..., H, W) with at least 2 dimensions; got shape {arr.shape}")
    if arr.size == 0 or min(arr.shape[-2:]) < 2:
        raise ValueError(f"{name} must hold images of at least 2 x 2 pixels; got shape {arr.shape}")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values; all values must be finite")
    return arr


def _radial_spectrum(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = x.shape[-2:]
    imgs = x.reshape(-1, h, w)
    imgs = imgs - imgs.mean(axis=(1, 2), keepdims=True)
    power = np.mean(np.abs(np.fft.fft2(imgs)) ** 2, axis=0) / (h * w)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    radius = np.hypot(fy, fx)
    step = 1.0 / min(h, w)
    n_bins = min(h, w) // 2
    bins = np.rint(radius / step).astype(np.int64)
    keep = (bins >= 1) & (bins <= n_bins)
    total = np.bincount(bins[keep], weights=power[keep], minlength=n_bins + 1)[1:]
    count = np.bincount(bins[keep], minlength=n_bins + 1)[1:]
    return np.arange(1, n_bins + 1) * step, total / count


def radial_power_spectrum(images: Any) -> tuple[np.ndarray, np.ndarray]:
    r"""Radially averaged 2-D power spectrum, averaged over a set of images.

    Parameters
    ----------
    images : array_like, shape (..., H, W)
        Images on the last two axes (``H, W >= 2``); every leading axis
        (samples, channels) is averaged over.  Each image has its own mean
        removed first.

    Returns
    -------
    frequencies : ndarray, shape (min(H, W) // 2,)
        Radial frequencies in cycles per pixel, :math:`1/\min(H, W)` to 0.5 in
        steps of :math:`1/\min(H, W)`.  The zero frequency (0 after mean
        removal) and the corners beyond 0.5 cycles/pixel are left out.
    power : ndarray, same shape
        Mean power per frequency bin.

    Notes
    -----
    For an image :math:`x` of :math:`H \times W` pixels with DFT
    :math:`\hat x(k)`, the power is :math:`P(k) = |\hat x(k)|^2 / (HW)`, so
    that (Parseval) the mean of :math:`P` over all frequencies equals the
    pixel variance.  Frequencies :math:`k = (f_y, f_x)` (``numpy.fft.fftfreq``)
    are binned by :math:`\operatorname{round}(|k| \min(H, W))` and averaged
    within each bin, then over images.  Generators with too little fine detail
    (e.g. heat-equation based ones) lose power at high frequencies, and
    up-sampling artefacts show as excess power there [Durall20]_.

    References
    ----------
    .. [Durall20] R. Durall, M. Keuper, J. Keuper, "Watch your up-convolution:
       CNN based generative deep neural networks are failing to reproduce
       spectral distributions", CVPR 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from pdediff.metrics import radial_power_spectrum
    >>> rng = np.random.default_rng(0)
    >>> f, p = radial_power_spectrum(rng.standard_normal((400, 16, 16)))
    >>> f
    array([0.0625, 0.125 , 0.1875, 0.25  , 0.3125, 0.375 , 0.4375, 0.5   ])
    >>> bool(np.all(np.abs(p - 1.0) < 0.1))  # white noise: flat spectrum at the variance
    True
    """
    return _radial_spectrum(_as_images(images, "images"))


def spectrum_error(real: Any, fake: Any, *, bands: int = 4) -> dict[str, Any]:
    r"""Log-power-spectrum difference between two image sets, per frequency band.

    Parameters
    ----------
    real, fake : array_like, shape (..., H, W)
        Real and generated images with the same ``H, W`` (any leading axes;
        see :func:`radial_power_spectrum`).
    bands : int, keyword-only
        Number of equal-width bands splitting the radial frequencies
        (0, 0.5] cycles/pixel; each band must contain at least one
        frequency bin, so ``1 <= bands <= min(H, W) // 2``.

    Returns
    -------
    dict
        ``band_0`` ... ``band_{bands-1}``
            Mean absolute :math:`\log_{10}` power difference over the
            frequency bins of each band, from low to high frequency
            (0: identical spectra; 1: a factor 10 in power).
        ``signed_band_0`` ... ``signed_band_{bands-1}``
            Mean signed difference :math:`\log_{10}(P_\mathrm{fake}/P_\mathrm{real})`:
            negative where the generated images have too little power (too
            smooth), positive where they have too much (noise, artefacts).
        ``total``
            Mean absolute difference over all frequency bins.
        ``band_edges``
            List of the ``bands + 1`` band edges in cycles/pixel; band ``i``
            holds the frequencies ``f`` with ``edges[i] < f <= edges[i + 1]``.

    Notes
    -----
    With :math:`P_r, P_g` from :func:`radial_power_spectrum`,
    :math:`\Delta(f) = \log_{10} P_g(f) - \log_{10} P_r(f)` and
    ``band_i`` :math:`= \operatorname{mean}_{f \in \mathrm{band}_i} |\Delta(f)|`.
    Powers are floored at :math:`10^{-12} \max_f P_r(f)`, so constant images
    give a large but finite error.  See [Durall20]_ for spectral
    discrepancies of generative models.

    Examples
    --------
    >>> import numpy as np
    >>> from pdediff.metrics import spectrum_error
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((20, 8, 8))
    >>> err = spectrum_error(x, x)
    >>> err["total"], err["band_edges"]
    (0.0, [0.0, 0.125, 0.25, 0.375, 0.5])
    >>> round(spectrum_error(x, 10 * x)["signed_band_3"], 6)  # 10x amplitude: 100x power
    2.0
    """
    x = _as_images(real, "real")
    y = _as_images(fake, "fake")
    if x.shape[-2:] != y.shape[-2:]:
        raise ValueError(
            f"real and fake must hold images of the same size (last two axes); got {x.shape[-2:]} and {y.shape[-2:]}"
        )
    freqs, pr = _radial_spectrum(x)
    _, pf = _radial_spectrum(y)
    nb = _positive_int(bands, "bands")
    if nb > freqs.size:
        raise ValueError(
            f"bands must be between 1 and {freqs.size} for {x.shape[-2]} x {x.shape[-1]} images "
            f"(each band needs a frequency bin); got {bands}"
        )
    floor = 1e-12 * float(pr.max()) if pr.max() > 0 else 1e-300
    delta = np.log10(np.maximum(pf, floor)) - np.log10(np.maximum(pr, floor))
    edges = np.linspace(0.0, 0.5, nb + 1)
    # Frequency i / m (m = min(H, W)) lies in band ceil(2 i nb / m) - 1, i.e. in (edges[b], edges[b+1]];
    # integer arithmetic avoids rounding at the edges.
    m = min(x.shape[-2:])
    which = (2 * np.arange(1, freqs.size + 1) * nb + m - 1) // m - 1
    out: dict[str, Any] = {}
    for b in range(nb):
        sel = which == b
        if not sel.any():
            raise ValueError(
                f"bands={bands} leaves band {b} without a frequency bin for {x.shape[-2]} x {x.shape[-1]} images; "
                f"use fewer bands"
            )
        out[f"band_{b}"] = float(np.mean(np.abs(delta[sel])))
    for b in range(nb):
        out[f"signed_band_{b}"] = float(np.mean(delta[which == b]))
    out["total"] = float(np.mean(np.abs(delta)))
    out["band_edges"] = [float(e) for e in edges]
    return out
