"""Metrics for sets of generated images (pdediff.metrics): correctness, invariances and errors."""

import doctest
import importlib
import itertools
import subprocess
import sys

import numpy as np
import pytest
import scipy.linalg
from scipy.ndimage import gaussian_filter

from pdediff import metrics
from pdediff.metrics import (
    FeatureExtractor,
    density_coverage,
    frechet_distance,
    label_statistics,
    memorisation_ratio,
    one_nn_accuracy,
    precision_recall,
    radial_power_spectrum,
    sliced_wasserstein,
    spectrum_error,
)


def _gaussian(rng, n, mean, cov):
    return rng.multivariate_normal(mean, cov, size=n)


def _random_cov(rng, d, floor=0.1):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + floor * np.eye(d)


def _frechet_scipy(mu_a, ca, mu_b, cb):
    """FID's formula written out with scipy.linalg.sqrtm of the product, as the reference code does."""
    covmean = scipy.linalg.sqrtm(ca @ cb)
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(ca) + np.trace(cb) - 2 * np.trace(covmean.real))


# --------------------------------------------------------------------------- Fréchet distance


def test_frechet_of_a_set_with_itself_is_zero():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((300, 8)) * 5 + 3
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    # Singular covariances (fewer samples than features) too: the eigh form needs no eps * I.
    small = rng.standard_normal((10, 50))
    assert frechet_distance(small, small) == pytest.approx(0.0, abs=1e-9)


def test_frechet_equals_direct_scipy_computation():
    rng = np.random.default_rng(2)
    d = 6
    ca, cb = _random_cov(rng, d), _random_cov(rng, d)
    a = _gaussian(rng, 400, rng.standard_normal(d), ca)
    b = _gaussian(rng, 300, rng.standard_normal(d) + 1.0, cb)
    expect = _frechet_scipy(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert expect > 1.0
    assert frechet_distance(a, b) == pytest.approx(expect, rel=1e-9)
    # Images are flattened: (N, 2, 3) is the same as (N, 6).
    assert frechet_distance(a.reshape(-1, 2, 3), b.reshape(-1, 2, 3)) == pytest.approx(expect, rel=1e-12)


def test_frechet_one_dimensional_closed_form():
    rng = np.random.default_rng(3)
    a, b = rng.normal(1.0, 2.0, (500, 1)), rng.normal(-0.5, 0.5, (400, 1))
    sa, sb = a.std(ddof=1), b.std(ddof=1)
    assert frechet_distance(a, b) == pytest.approx((a.mean() - b.mean()) ** 2 + (sa - sb) ** 2, rel=1e-10)


def test_frechet_approaches_population_value():
    rng = np.random.default_rng(4)
    d = 4
    mu_a, mu_b = np.zeros(d), np.full(d, 0.5)
    ca, cb = _random_cov(rng, d), _random_cov(rng, d)
    truth = _frechet_scipy(mu_a, ca, mu_b, cb)
    reps = 12
    rmse = {}
    for n in (200, 2000, 20000):
        est = np.array([frechet_distance(_gaussian(rng, n, mu_a, ca), _gaussian(rng, n, mu_b, cb))
                        for _ in range(reps)])
        err = est - truth
        # Sampling error: the spread over repetitions, plus the O(1/N) upward bias of the plug-in
        # estimate (the mean term alone is biased by (Tr Ca + Tr Cb) / N).
        bias = (np.trace(ca) + np.trace(cb)) / n
        assert abs(err.mean()) <= 4 * est.std(ddof=1) / np.sqrt(reps) + 2 * bias, (n, err.mean(), est.std())
        rmse[n] = float(np.sqrt(np.mean(err**2)))
    assert rmse[20000] < rmse[2000] < rmse[200]
    assert rmse[20000] < rmse[200] / 4  # ~1/sqrt(N): a factor 10 expected


def test_frechet_invariant_to_order_and_symmetric():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((200, 5))
    b = rng.standard_normal((150, 5)) * 1.5 + 0.3
    d = frechet_distance(a, b)
    assert frechet_distance(a[rng.permutation(200)], b[rng.permutation(150)]) == pytest.approx(d, rel=1e-10)
    assert frechet_distance(b, a) == pytest.approx(d, rel=1e-9)


def test_frechet_grows_monotonically_with_noise():
    rng = np.random.default_rng(6)
    a = rng.standard_normal((400, 8))
    noise = rng.standard_normal(a.shape)
    values = [frechet_distance(a, a + s * noise) for s in (0.0, 0.1, 0.3, 1.0, 3.0)]
    assert values[0] == pytest.approx(0.0, abs=1e-9)
    assert all(x < y for x, y in itertools.pairwise(values)), values


# --------------------------------------------------------------------------- 1-NN two-sample test


def test_one_nn_accuracy_two_halves_of_one_set_is_chance():
    rng = np.random.default_rng(7)
    z = rng.standard_normal((1000, 5))
    acc = one_nn_accuracy(z[:500], z[500:])
    assert abs(acc - 0.5) < 4 * np.sqrt(0.25 / 1000), acc


def test_one_nn_accuracy_tends_to_one_for_disjoint_sets():
    rng = np.random.default_rng(8)
    a, b = rng.standard_normal((300, 3)), rng.standard_normal((300, 3))
    accs = [one_nn_accuracy(a, b + shift) for shift in (0.0, 1.0, 3.0, 50.0)]
    assert all(x < y for x, y in itertools.pairwise(accs[:3])), accs
    assert accs[-1] == 1.0
    # Exact copies are each other's nearest neighbours: the signature of memorisation.
    assert one_nn_accuracy(a, a) == 0.0


# --------------------------------------------------------------------------- sliced Wasserstein


def test_sliced_wasserstein_zero_and_growing_with_shift():
    rng = np.random.default_rng(9)
    a = rng.standard_normal((300, 6))
    assert sliced_wasserstein(a, a) == 0.0
    assert sliced_wasserstein(a, a[rng.permutation(300)]) == pytest.approx(0.0, abs=1e-12)
    values = [sliced_wasserstein(a, a + s) for s in (0.1, 0.5, 1.0, 2.0)]
    assert values[0] > 0 and all(x < y for x, y in itertools.pairwise(values)), values


def test_sliced_wasserstein_one_dimensional_shift_is_exact():
    rng = np.random.default_rng(10)
    a = rng.standard_normal((257, 1))
    for shift in (0.3, -2.0, 7.5):
        assert sliced_wasserstein(a, a + shift, n_projections=3) == pytest.approx(abs(shift), rel=1e-12)


def test_sliced_wasserstein_shift_matches_expected_projection():
    # Translating by v: every projection's W2^2 is (theta . v)^2, whose mean over uniform unit
    # directions in D dimensions is |v|^2 / D, with variance |v|^4 * 2 (D-1) / (D^2 (D+2)).
    rng = np.random.default_rng(11)
    d, p = 10, 4000
    a = rng.standard_normal((200, d))
    v = rng.standard_normal(d) * 2
    sw2 = sliced_wasserstein(a, a + v, n_projections=p, seed=3) ** 2
    v2 = float(v @ v)
    sd = v2 * np.sqrt(2 * (d - 1) / (d**2 * (d + 2)) / p)
    assert abs(sw2 - v2 / d) < 4 * sd, (sw2, v2 / d, sd)


def test_sliced_wasserstein_different_sizes_by_quantiles():
    a = np.array([[0.0], [1.0]])
    b = np.array([[0.0], [0.5], [1.0]])
    # Quantile functions differ by 0.5 on (1/3, 2/3): W2^2 = 0.25 / 3.
    assert sliced_wasserstein(a, b) == pytest.approx(np.sqrt(1 / 12), rel=1e-12)
    rng = np.random.default_rng(12)
    x = rng.standard_normal((100, 4))
    assert sliced_wasserstein(x, np.concatenate([x, x])) == pytest.approx(0.0, abs=1e-12)


def test_sliced_wasserstein_seeded():
    rng = np.random.default_rng(13)
    a, b = rng.standard_normal((100, 5)), rng.standard_normal((100, 5)) + 0.2
    assert sliced_wasserstein(a, b, seed=4) == sliced_wasserstein(a, b, seed=4)
    assert sliced_wasserstein(a, b, seed=4) != sliced_wasserstein(a, b, seed=5)
    assert sliced_wasserstein(a, b, seed=np.random.default_rng(4)) == sliced_wasserstein(a, b, seed=4)


# --------------------------------------------------------------------------- power spectra


def _smooth_images(rng, n=64, size=16):
    # Random fields with a decaying spectrum, a stand-in for natural images.
    return np.stack([gaussian_filter(rng.standard_normal((size, size)), 0.7, mode="wrap") for _ in range(n)])


def test_radial_power_spectrum_white_noise_and_scaling():
    rng = np.random.default_rng(14)
    x = rng.standard_normal((300, 2, 16, 16))  # leading axes (samples, channels) are averaged
    f, p = radial_power_spectrum(x)
    assert np.allclose(f, np.arange(1, 9) / 16)
    assert np.all(np.abs(p - 1.0) < 0.12)  # white noise of unit variance: flat at 1 (Parseval)
    _, p2 = radial_power_spectrum(3 * x + 5)  # the mean is removed, power scales with amplitude^2
    assert np.allclose(p2, 9 * p)


def test_spectrum_error_zero_for_identical_sets():
    rng = np.random.default_rng(15)
    x = _smooth_images(rng)
    err = spectrum_error(x, x)
    assert err["total"] == 0.0
    assert all(err[f"band_{b}"] == 0.0 for b in range(4))
    assert err["band_edges"] == [0.0, 0.125, 0.25, 0.375, 0.5]


def test_spectrum_error_blur_loses_high_frequencies():
    rng = np.random.default_rng(16)
    real = _smooth_images(rng)
    blurred = gaussian_filter(real, (0, 1.0, 1.0), mode="wrap")
    err = spectrum_error(real, blurred, bands=4)
    assert err["signed_band_3"] < 0 and err["band_3"] == pytest.approx(-err["signed_band_3"])
    assert err["band_3"] > err["band_2"] > err["band_1"] > err["band_0"], err
    assert err["band_0"] < 0.5 < err["band_3"]
    # Fresh real images: small error, far below the blur's.
    assert spectrum_error(real, _smooth_images(rng))["total"] < 0.2 * err["total"]


def test_spectrum_error_bands_and_sizes():
    rng = np.random.default_rng(17)
    x = rng.standard_normal((10, 8, 8))
    err = spectrum_error(x, x * 2, bands=2)
    assert set(err) == {"band_0", "band_1", "signed_band_0", "signed_band_1", "total", "band_edges"}
    assert err["signed_band_0"] == pytest.approx(np.log10(4))
    with pytest.raises(ValueError, match="bands must be between 1 and 4"):
        spectrum_error(x, x, bands=5)
    with pytest.raises(ValueError, match="bands"):
        spectrum_error(x, x, bands=0)
    with pytest.raises(ValueError, match="same size"):
        spectrum_error(x, rng.standard_normal((10, 8, 9)))
    with pytest.raises(ValueError, match="real must have shape"):
        spectrum_error(np.zeros(8), x)
    # Odd sizes: frequencies up to 3/7 still fall into every band.
    y = rng.standard_normal((5, 7, 7))
    assert spectrum_error(y, y, bands=3)["total"] == 0.0


# --------------------------------------------------------------------------- precision / recall, density / coverage


def test_precision_recall_identical_and_disjoint():
    rng = np.random.default_rng(18)
    real = rng.standard_normal((400, 4))
    assert precision_recall(real, real) == {"precision": 1.0, "recall": 1.0}
    assert precision_recall(real, real + 100.0) == {"precision": 0.0, "recall": 0.0}
    same = precision_recall(real, rng.standard_normal((400, 4)))
    assert same["precision"] > 0.8 and same["recall"] > 0.8


def test_precision_recall_detects_mode_collapse():
    rng = np.random.default_rng(19)
    real = rng.standard_normal((500, 2))
    collapsed = 0.2 * rng.standard_normal((500, 2))  # all inside the data, covering little of it
    pr = precision_recall(real, collapsed)
    assert pr["precision"] > 0.95 and pr["recall"] < 0.4


def test_density_coverage_identical_and_disjoint():
    rng = np.random.default_rng(20)
    real = rng.standard_normal((400, 4))
    dc = density_coverage(real, real)
    assert dc["coverage"] == 1.0 and dc["density"] >= 1.0 / 5  # each sample lies at least in its own ball
    assert density_coverage(real, real + 100.0) == {"density": 0.0, "coverage": 0.0}
    fresh = density_coverage(real, rng.standard_normal((400, 4)))
    assert 0.7 < fresh["density"] < 1.3 and fresh["coverage"] > 0.8


# --------------------------------------------------------------------------- labels, memorisation


def test_label_statistics_uniform_and_single_class():
    uniform = np.eye(10)[np.arange(100) % 10]
    assert label_statistics(uniform) == pytest.approx({"entropy": 1.0, "coverage": 1.0, "confidence": 1.0})
    single = np.eye(10)[np.full(50, 3)]
    assert label_statistics(single) == {"entropy": 0.0, "coverage": 0.1, "confidence": 1.0}
    assert label_statistics(np.full(50, 3), n_classes=10) == label_statistics(single)
    unsure = np.full((20, 4), 0.25)
    stats = label_statistics(unsure)
    assert stats["entropy"] == pytest.approx(1.0) and stats["confidence"] == pytest.approx(0.25)
    half = label_statistics(np.eye(4)[[0, 1] * 10])  # two of four classes, equally often
    assert half["entropy"] == pytest.approx(0.5) and half["coverage"] == 0.5


def test_label_statistics_errors():
    with pytest.raises(ValueError, match="n_classes is required"):
        label_statistics(np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="n_classes must equal"):
        label_statistics(np.eye(3), n_classes=4)
    with pytest.raises(ValueError, match="rows summing to 1"):
        label_statistics(np.full((3, 3), 0.5))
    with pytest.raises(ValueError, match=r"\[0, n_classes=3\)"):
        label_statistics(np.array([0, 3]), n_classes=3)
    with pytest.raises(ValueError, match="probabilities contains NaN"):
        label_statistics(np.array([[np.nan, 1.0]]))
    with pytest.raises(TypeError, match="integer class labels"):
        label_statistics(np.array([0.2, 0.8]), n_classes=2)


def test_memorisation_ratio_copies_and_fresh_draws():
    rng = np.random.default_rng(21)
    train, heldout = rng.standard_normal((600, 5)), rng.standard_normal((300, 5))
    copies = train[rng.choice(600, 300, replace=False)] + 1e-3 * rng.standard_normal((300, 5))
    assert memorisation_ratio(copies, train, heldout) < 0.05
    fresh = memorisation_ratio(rng.standard_normal((300, 5)), train, heldout)
    assert 0.85 < fresh < 1.15
    with pytest.raises(ValueError, match="heldout must be disjoint from train"):
        memorisation_ratio(copies, train, train[:300])


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("func", [frechet_distance, sliced_wasserstein, one_nn_accuracy])
def test_pair_validation(func):
    rng = np.random.default_rng(22)
    a = rng.standard_normal((20, 3))
    with pytest.raises(ValueError, match=r"a must have shape \(N, D\)"):
        func(a[:, 0], a)
    with pytest.raises(ValueError, match="a and b must have the same number of features.*D=3 and D=4"):
        func(a, rng.standard_normal((20, 4)))
    bad = a.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="b contains NaN"):
        func(a, bad)
    with pytest.raises(ValueError, match="a contains NaN or infinite"):
        func(np.where(bad > 0, np.inf, bad), a)
    with pytest.raises(TypeError, match="b must be a real numeric array"):
        func(a, a.astype(complex))
    with pytest.raises(TypeError, match="a must be an array"):
        func(3.0, a)


def test_sample_count_and_option_validation():
    rng = np.random.default_rng(23)
    a = rng.standard_normal((20, 3))
    with pytest.raises(ValueError, match="b must hold at least 2 samples"):
        frechet_distance(a, a[:1])
    with pytest.raises(ValueError, match="fake must hold at least 4 samples"):
        precision_recall(a, a[:3], k=3)
    with pytest.raises(ValueError, match="real must hold at least 6 samples"):
        density_coverage(a[:5], a)
    with pytest.raises(ValueError, match="real and fake must have the same number of features"):
        precision_recall(a, a[:, :2])
    with pytest.raises(ValueError, match="heldout and train must have the same number of features"):
        memorisation_ratio(a, a, a[:, :2])
    with pytest.raises(ValueError, match="n_projections must be an integer >= 1"):
        sliced_wasserstein(a, a, n_projections=0)
    with pytest.raises(TypeError, match="n_projections"):
        sliced_wasserstein(a, a, n_projections=2.5)
    with pytest.raises(TypeError, match="k must be an integer"):
        precision_recall(a, a, k=True)
    with pytest.raises(TypeError, match="seed"):
        sliced_wasserstein(a, a, seed="x")
    with pytest.raises(TypeError):
        frechet_distance(a, a, 3)  # options are keyword-only (and frechet_distance has none)
    with pytest.raises(TypeError):
        sliced_wasserstein(a, a, 10)


# --------------------------------------------------------------------------- FeatureExtractor


@pytest.fixture(scope="module")
def digits_split():
    datasets = pytest.importorskip("sklearn.datasets")
    d = datasets.load_digits()
    order = np.random.default_rng(0).permutation(len(d.images))
    x, y = d.images[order] / 16.0, d.target[order]
    return x[:1250], y[:1250], x[1250:], y[1250:]


@pytest.fixture(scope="module")
def digits_classifier(digits_split):
    x_train, y_train, _, _ = digits_split
    return FeatureExtractor.fit(x_train, y_train, seed=0)


def test_feature_extractor_classifier_on_digits(digits_classifier, digits_split):
    fe = digits_classifier
    x_train, _, x_test, y_test = digits_split
    assert fe.kind == "classifier" and fe.n_features == 128 and fe.input_shape == (8, 8)
    assert fe.accuracy > 0.9
    assert fe.reconstruction_error is None
    # The held-out part is a stratified 20 % of the fit data, disjoint from the part trained on.
    assert np.intersect1d(fe.fit_index, fe.heldout_index).size == 0
    assert fe.fit_index.size + fe.heldout_index.size == len(x_train)
    assert abs(fe.heldout_index.size - 0.2 * len(x_train)) <= 10
    # It generalises to the untouched test split as well.
    assert np.mean(fe.predict(x_test) == y_test) > 0.9
    proba = fe.predict_proba(x_test)
    assert proba.shape == (len(x_test), 10) and np.allclose(proba.sum(1), 1.0)
    stats = label_statistics(proba)
    assert stats["entropy"] > 0.95 and stats["coverage"] == 1.0 and stats["confidence"] > 0.8
    feats = fe.transform(x_test)
    assert feats.shape == (len(x_test), 128) and feats.dtype == np.float64 and feats.min() >= 0


def test_feature_frechet_floor_far_below_noise(digits_classifier, digits_split):
    fe = digits_classifier
    _, _, x_test, _ = digits_split
    half = len(x_test) // 2
    floor = frechet_distance(fe.transform(x_test[:half]), fe.transform(x_test[half:2 * half]))
    noise = np.random.default_rng(1).random((half, 8, 8))
    to_noise = frechet_distance(fe.transform(x_test[:half]), fe.transform(noise))
    assert floor < to_noise / 10, (floor, to_noise)
    # Blurred digits sit in between.
    blurred = gaussian_filter(x_test[half:2 * half], (0, 1.0, 1.0))
    to_blur = frechet_distance(fe.transform(x_test[:half]), fe.transform(blurred))
    assert floor < to_blur < to_noise


def test_feature_extractor_deterministic(digits_split):
    x_train, y_train, x_test, _ = digits_split
    a = FeatureExtractor.fit(x_train[:500], y_train[:500], seed=3, max_iter=50)
    b = FeatureExtractor.fit(x_train[:500], y_train[:500], seed=3, max_iter=50)
    c = FeatureExtractor.fit(x_train[:500], y_train[:500], seed=4, max_iter=50)
    assert np.array_equal(a.transform(x_test), b.transform(x_test))
    assert np.array_equal(a.heldout_index, b.heldout_index) and a.accuracy == b.accuracy
    assert not np.allclose(a.transform(x_test), c.transform(x_test))


def test_feature_extractor_autoencoder_on_unlabelled_images(digits_split):
    x_train, _, x_test, _ = digits_split
    imgs = x_train[:600, None]  # (N, C, H, W)
    fe = FeatureExtractor.fit(imgs, hidden=(64, 32), seed=0)
    assert fe.kind == "autoencoder" and fe.n_features == 32 and fe.input_shape == (1, 8, 8)
    assert fe.accuracy is None and fe.classes is None
    held = imgs[fe.heldout_index]
    baseline = float(np.mean((held - imgs[fe.fit_index].mean(0)) ** 2))  # predicting the mean image
    assert fe.reconstruction_error < 0.5 * baseline
    feats = fe.transform(x_test[:, None])
    assert feats.shape == (len(x_test), 32)
    half = len(x_test) // 2
    floor = frechet_distance(feats[:half], feats[half:2 * half])
    noise = fe.transform(np.random.default_rng(2).random((half, 1, 8, 8)))
    assert floor < frechet_distance(feats[:half], noise) / 5
    with pytest.raises(TypeError, match="predict_proba needs a classifier"):
        fe.predict_proba(x_test[:, None])
    with pytest.raises(ValueError, match=r"images must have shape \(N, 1, 8, 8\)"):
        fe.transform(x_test)


def test_feature_extractor_validation(digits_split):
    x_train, y_train, _, _ = digits_split
    with pytest.raises(ValueError, match="labels must have shape"):
        FeatureExtractor.fit(x_train[:50], y_train[:40])
    with pytest.raises(ValueError, match="at least 2 classes"):
        FeatureExtractor.fit(x_train[:50], np.zeros(50, dtype=int))
    with pytest.raises(ValueError, match="images contains NaN"):
        FeatureExtractor.fit(np.full((10, 4, 4), np.nan))
    with pytest.raises(ValueError, match="images must have shape"):
        FeatureExtractor.fit(np.zeros(10))
    with pytest.raises(ValueError, match="hidden must be"):
        FeatureExtractor.fit(x_train[:50], hidden=())
    with pytest.raises(ValueError, match="holdout must be"):
        FeatureExtractor.fit(x_train[:50], holdout=1.0)


def test_import_is_light():
    code = ("import sys, pdediff.metrics as m; m.FeatureExtractor; "
            "bad = [k for k in ('sklearn', 'torch', 'skimage') if k in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_api():
    assert set(metrics.__all__) == {"psnr", "ssim", "frechet_distance", "sliced_wasserstein", "one_nn_accuracy",
                                    "precision_recall", "density_coverage", "label_statistics",
                                    "memorisation_ratio", "radial_power_spectrum", "spectrum_error",
                                    "FeatureExtractor"}
    for name in metrics.__all__:
        assert getattr(metrics, name).__doc__


@pytest.mark.parametrize("module", ["pdediff.metrics._sets", "pdediff.metrics._features"])
def test_docstring_examples(module):
    if module.endswith("_features"):
        pytest.importorskip("sklearn")
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
