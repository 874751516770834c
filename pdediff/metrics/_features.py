"""A small feature network trained locally, for Fréchet distance and the other set metrics.

Published FIDs use Inception-v3 features of 299 x 299 natural images, which
say little about 8 x 8 digits and need a download.  :class:`FeatureExtractor`
instead fits a scikit-learn multi-layer perceptron on the *training split* of
the data being modelled (a classifier when labels exist, an autoencoder
otherwise), and uses its last hidden layer as the feature space.
scikit-learn is needed only to fit (``pip install "pdediff[metrics]"``);
:meth:`FeatureExtractor.transform` is plain NumPy.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np

__all__ = ["FeatureExtractor"]

KINDS = ("classifier", "autoencoder")


def _import_sklearn():
    try:
        import sklearn  # noqa: F401
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier, MLPRegressor
    except ImportError as exc:  # pragma: no cover - exercised only without scikit-learn
        raise ImportError(
            "FeatureExtractor.fit needs scikit-learn (>= 1.2); install it with "
            "pip install 'pdediff[metrics]' (or pip install scikit-learn)"
        ) from exc
    return MLPClassifier, MLPRegressor, ConvergenceWarning


def _as_image_batch(images: Any, name: str, *, min_samples: int = 1) -> np.ndarray:
    if images is None or isinstance(images, (bool, numbers.Number, str, bytes)):
        raise TypeError(f"{name} must be an array of shape (N, C, H, W), (N, H, W) or (N, D); "
                        f"got {type(images).__name__}")
    arr = np.asarray(images)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real numeric array (bool, integer or float); got dtype {arr.dtype}")
    if arr.ndim < 2:
        raise ValueError(f"{name} must have shape (N, C, H, W), (N, H, W) or (N, D) (N samples first); "
                         f"got shape {arr.shape}")
    if arr.shape[0] < min_samples:
        raise ValueError(f"{name} must hold at least {min_samples} samples (axis 0); got {arr.shape[0]}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty; got shape {arr.shape}")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values; all values must be finite")
    return arr


def _hidden_sizes(hidden: Any) -> tuple[int, ...]:
    try:
        sizes = tuple(hidden)
    except TypeError:
        raise TypeError(f"hidden must be a non-empty sequence of positive integers, e.g. (256, 128); "
                        f"got {hidden!r}") from None
    if not sizes or any(isinstance(h, (bool, np.bool_)) or not isinstance(h, numbers.Integral) or h < 1
                        for h in sizes):
        raise ValueError(f"hidden must be a non-empty sequence of positive integers, e.g. (256, 128); got {hidden!r}")
    return tuple(int(h) for h in sizes)


def _split(n: int, labels: np.ndarray | None, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (stratified when labelled) split of ``range(n)`` into fit and held-out indices."""
    rng = np.random.default_rng(seed)
    if holdout == 0:
        return np.arange(n), np.arange(0)
    if labels is None:
        perm = rng.permutation(n)
        n_hold = min(max(round(holdout * n), 1), n - 2)
        return np.sort(perm[n_hold:]), np.sort(perm[:n_hold])
    held = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_hold = min(round(holdout * idx.size), idx.size - 1)  # keep every class in the fit part
        held.append(idx[:n_hold])
    held_idx = np.sort(np.concatenate(held)).astype(np.int64)
    if held_idx.size == 0:
        raise ValueError(f"holdout={holdout} leaves no held-out samples; use a larger holdout or more samples")
    fit_idx = np.setdiff1d(np.arange(n), held_idx)
    return fit_idx, held_idx


class FeatureExtractor:
    r"""Features from a multi-layer perceptron fitted on the training split of a data set.

    Create one with :meth:`fit`; then :meth:`transform` maps images to the
    activations of the network's last hidden layer (classifier) or of its
    bottleneck (autoencoder), the feature space for
    :func:`~pdediff.metrics.frechet_distance`, :func:`~pdediff.metrics.precision_recall`
    and the other set metrics.  Fit it on training images only and compare
    generated samples with *held-out* real images in its feature space.

    Attributes
    ----------
    kind : {"classifier", "autoencoder"}
        ``"classifier"`` when fitted with labels, else ``"autoencoder"``.
    n_features : int
        Feature dimension ``D`` (the last entry of ``hidden``; 128 by default).
    input_shape : tuple of int
        Shape of one image (all axes after the first), required by :meth:`transform`.
    accuracy : float or None
        Classifier: accuracy on the held-out part of the fit data (None for an
        autoencoder, or with ``holdout=0``).
    reconstruction_error : float or None
        Autoencoder: mean squared reconstruction error on the held-out part, in
        the units of the images (None for a classifier, or with ``holdout=0``).
    classes : ndarray or None
        Class labels, in the column order of :meth:`predict_proba` (classifier only).
    fit_index, heldout_index : ndarray of int
        Indices (into the arrays given to :meth:`fit`) of the samples the
        network was trained on and of the held-out samples it was scored on.
    seed : int
        The seed the network was fitted with.

    Notes
    -----
    Images are flattened and standardised with the mean and standard deviation
    of all pixels of the fit part (one scalar each, so constant border pixels
    stay harmless).  The classifier is a scikit-learn
    :class:`~sklearn.neural_network.MLPClassifier` with ReLU hidden layers
    ``hidden``; the autoencoder an :class:`~sklearn.neural_network.MLPRegressor`
    with hidden layers ``hidden + hidden[-2::-1]`` (e.g. 256-128-256), trained to
    reproduce its standardised input, whose middle layer is the bottleneck.
    Both use Adam with the fixed ``seed`` (weights, mini-batch order), so a fit
    is reproducible.  The features are :math:`h_{\ell} =
    \max(0, W_\ell^\top h_{\ell-1} + b_\ell)` computed from ``coefs_`` and
    ``intercepts_``, in float64.
    """

    def __init__(self, *, model: Any, kind: str, input_shape: tuple[int, ...], mean: float, scale: float,
                 n_encoder_layers: int, accuracy: float | None, reconstruction_error: float | None,
                 classes: np.ndarray | None, fit_index: np.ndarray, heldout_index: np.ndarray, seed: int) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
        self._model = model
        self.kind = kind
        self.input_shape = tuple(int(s) for s in input_shape)
        self._mean = float(mean)
        self._scale = float(scale)
        self._weights = [np.asarray(w, dtype=np.float64) for w in model.coefs_[:n_encoder_layers]]
        self._biases = [np.asarray(b, dtype=np.float64) for b in model.intercepts_[:n_encoder_layers]]
        self.n_features = int(self._weights[-1].shape[1])
        self.accuracy = accuracy
        self.reconstruction_error = reconstruction_error
        self.classes = classes
        self.fit_index = fit_index
        self.heldout_index = heldout_index
        self.seed = seed

    def __repr__(self) -> str:
        score = (f"accuracy={self.accuracy:.3f}" if self.kind == "classifier" and self.accuracy is not None
                 else f"reconstruction_error={self.reconstruction_error:.3g}"
                 if self.reconstruction_error is not None else "no held-out score")
        return (f"FeatureExtractor(kind={self.kind!r}, input_shape={self.input_shape}, "
                f"n_features={self.n_features}, {score})")

    @classmethod
    def fit(cls, images: Any, labels: Any = None, *, seed: int = 0, hidden: Any = (256, 128),
            holdout: float = 0.2, max_iter: int = 200) -> FeatureExtractor:
        """Fit a classifier (with ``labels``) or an autoencoder (without) on ``images``.

        Parameters
        ----------
        images : array_like, shape (N, C, H, W), (N, H, W) or (N, D)
            Training images (real, finite); every sample is flattened.  Pass the
            training split of the data only, never the images you evaluate on.
        labels : array_like, shape (N,), optional
            Class labels (at least 2 classes).  Given: an ``MLPClassifier``;
            ``None``: an autoencoder (``MLPRegressor``).
        seed : int, keyword-only
            Seed of the held-out split, the weight initialisation and the
            mini-batch order: the same seed and data give the same network.
        hidden : sequence of int, keyword-only
            Hidden layer sizes; the last one is the feature dimension.
        holdout : float, keyword-only
            Fraction in ``[0, 1)`` of the samples kept out of training to
            score the network (``accuracy`` / ``reconstruction_error``).  With
            labels the split is stratified: ``round(holdout * n_c)`` samples
            of each class ``c`` (at least one per class stays in training);
            without, a seeded random ``round(holdout * N)``.  0: train on
            everything and report no score.
        max_iter : int, keyword-only
            Maximum number of epochs (Adam; stops earlier when the training
            loss stops improving by 1e-4 for 10 epochs).

        Returns
        -------
        FeatureExtractor

        Raises
        ------
        ImportError
            If scikit-learn is not installed (``pip install "pdediff[metrics]"``).

        Examples
        --------
        >>> from sklearn.datasets import load_digits
        >>> from pdediff.metrics import FeatureExtractor
        >>> digits = load_digits()
        >>> fe = FeatureExtractor.fit(digits.images[:600] / 16, digits.target[:600], seed=0)
        >>> fe.kind, fe.n_features, fe.transform(digits.images[600:610] / 16).shape
        ('classifier', 128, (10, 128))
        >>> fe.accuracy > 0.85
        True
        """
        mlp_classifier, mlp_regressor, convergence_warning = _import_sklearn()
        x = _as_image_batch(images, "images", min_samples=4)
        sizes = _hidden_sizes(hidden)
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**32:
            raise TypeError(f"seed must be an integer in [0, 2**32); got {seed!r}")
        if isinstance(holdout, (bool, np.bool_)) or not isinstance(holdout, numbers.Real) or not 0 <= holdout < 1:
            raise ValueError(f"holdout must be a number in [0, 1); got {holdout!r}")
        if isinstance(max_iter, (bool, np.bool_)) or not isinstance(max_iter, numbers.Integral) or max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer; got {max_iter!r}")
        n = x.shape[0]
        flat = x.reshape(n, -1)
        y = None
        if labels is not None:
            y = np.asarray(labels)
            if y.ndim != 1 or y.shape[0] != n:
                raise ValueError(f"labels must have shape (N,) = ({n},), one label per image; got shape {y.shape}")
            if y.dtype == object or y.dtype.kind not in "biuUS":
                raise TypeError(f"labels must be integer (or string) class labels; got dtype {y.dtype}")
            if np.unique(y).size < 2:
                raise ValueError("labels must contain at least 2 classes")
        fit_idx, held_idx = _split(n, y, float(holdout), int(seed))
        mean = float(flat[fit_idx].mean())
        scale = float(flat[fit_idx].std())
        scale = scale if scale > 0 else 1.0
        z = (flat - mean) / scale
        common = {"activation": "relu", "solver": "adam", "alpha": 1e-4, "batch_size": min(200, fit_idx.size),
                  "learning_rate_init": 1e-3, "max_iter": int(max_iter), "tol": 1e-4, "n_iter_no_change": 10,
                  "random_state": int(seed)}
        accuracy = reconstruction_error = None
        # One BLAS thread: these matrices are small, and threads contending with other work on a
        # loaded 2-core machine made fits 5x slower; it also makes the result independent of the
        # machine's thread count.
        from threadpoolctl import threadpool_limits

        with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
            # Hitting max_iter is expected for a fixed budget; the held-out score reports the quality.
            warnings.simplefilter("ignore", convergence_warning)
            if y is not None:
                model = mlp_classifier(hidden_layer_sizes=sizes, **common).fit(z[fit_idx], y[fit_idx])
                if held_idx.size:
                    accuracy = float(np.mean(model.predict(z[held_idx]) == y[held_idx]))
                kind, n_layers, classes = "classifier", len(sizes), np.asarray(model.classes_)
            else:
                model = mlp_regressor(hidden_layer_sizes=sizes + sizes[-2::-1], **common).fit(z[fit_idx], z[fit_idx])
                if held_idx.size:
                    recon = model.predict(z[held_idx]) * scale + mean
                    reconstruction_error = float(np.mean((recon - flat[held_idx]) ** 2))
                kind, n_layers, classes = "autoencoder", len(sizes), None
        return cls(model=model, kind=kind, input_shape=x.shape[1:], mean=mean, scale=scale,
                   n_encoder_layers=n_layers, accuracy=accuracy, reconstruction_error=reconstruction_error,
                   classes=classes, fit_index=fit_idx, heldout_index=held_idx, seed=int(seed))

    def _standardised(self, images: Any) -> np.ndarray:
        x = _as_image_batch(images, "images")
        if x.shape[1:] != self.input_shape:
            raise ValueError(f"images must have shape (N, {', '.join(map(str, self.input_shape))}) like the "
                             f"images this extractor was fitted on; got shape {x.shape}")
        return (x.reshape(x.shape[0], -1) - self._mean) / self._scale

    def transform(self, images: Any) -> np.ndarray:
        """Features of ``images``: last hidden layer (classifier) or bottleneck (autoencoder).

        Parameters
        ----------
        images : array_like, shape (N, \\*input_shape)
            Images shaped like those given to :meth:`fit`, in the same value range.

        Returns
        -------
        ndarray, shape (N, n_features), float64
            Non-negative (ReLU) activations.  NumPy only; needs no scikit-learn.
        """
        h = self._standardised(images)
        for w, b in zip(self._weights, self._biases):
            h = np.maximum(h @ w + b, 0.0)
        return h

    def predict_proba(self, images: Any) -> np.ndarray:
        """Class probabilities, shape (N, n_classes), columns in the order of :attr:`classes`.

        Only for a classifier (fitted with labels); use the result with
        :func:`~pdediff.metrics.label_statistics`.

        Raises
        ------
        TypeError
            If this extractor is an autoencoder (fitted without labels).
        """
        if self.kind != "classifier":
            raise TypeError("predict_proba needs a classifier FeatureExtractor (fitted with labels); "
                            f"this one is an {self.kind}")
        return np.asarray(self._model.predict_proba(self._standardised(images)), dtype=np.float64)

    def predict(self, images: Any) -> np.ndarray:
        """Most probable class of each image, shape (N,) (classifier only, like :meth:`predict_proba`)."""
        proba = self.predict_proba(images)
        return self.classes[np.argmax(proba, axis=1)]
