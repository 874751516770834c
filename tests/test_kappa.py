"""The fused kappa estimate (radix-select median and MAD) against the NumPy formula it replaces."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import reference as ref
from hypothesis import given
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter

import pdediff
from pdediff.anisotropic.kappa import FACTORS
from pdediff.kernels.cpu import kappa as kk
from pdediff.kernels.cpu.backend import CPU

SHAPES = {  # per ndim: one shape with an odd and one with an even number of faces
    1: [(24,), (25,)],
    2: [(11, 14), (12, 14)],
    3: [(6, 7, 9), (6, 7, 8)],
}
SPACING = {1: (0.8,), 2: (1.0, 0.6), 3: (2.5, 1.0, 0.7)}
#: The mean fallback sums unrounded magnitudes; the reference divides float32 differences by h in float32.
MEAN_TOL = {np.float32: 1e-6, np.float64: 1e-12}


def n_faces(shape):
    return sum(int(np.prod(shape)) // n * (n - 1) for n in shape)


def stats(v, spacing):
    med, mad, _ = CPU.face_gradient_mad(v, spacing)
    return med, mad


def smooth_noisy(rng, shape, channels, dtype, scale=1.0):
    """A Catté-like input: smoothed blobs plus noise, ``(C, *shape)``."""
    base = gaussian_filter(rng.standard_normal((channels, *shape)), [0] + [1.5] * len(shape))
    return (scale * (base + 0.05 * rng.standard_normal(base.shape))).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("parity", [0, 1])
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_matches_numpy_reference(ndim, parity, channels, dtype, rng):
    shape = SHAPES[ndim][parity]
    assert n_faces(shape) % 2 == (1 - parity)  # both parities covered
    h = SPACING[ndim]
    v = smooth_noisy(rng, shape, channels, dtype)
    _, med_ref, mad_ref, _ = ref.kappa_reference(v, h)
    med, mad = stats(v, h)
    assert med == pytest.approx(med_ref, rel=1e-6)
    assert mad == pytest.approx(mad_ref, rel=1e-6)
    for cond in ("exponential", "rational", "tukey", "callable-uses-exponential"):
        assert pdediff.estimate_kappa(v, h, cond) == pytest.approx(ref.kappa_reference(v, h, cond)[0], rel=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,spacing", [((40, 41), (1.0, 0.5)), ((7, 9, 10), (1.0, 1.0, 2.0)), ((99,), (1.0,))])
@pytest.mark.parametrize("channels", [1, 3])
def test_selection_is_exact_on_integer_data(shape, spacing, channels, dtype, rng):
    """Integer images, power-of-two spacing: every magnitude is computed bit-identically, many tie.

    The median then equals NumPy's on the float32-rounded magnitudes exactly,
    the MAD up to the float32 rounding of the deviations.
    """
    v = rng.integers(0, 6, (channels, *shape)).astype(dtype)
    _, med_ref, mad_ref, _ = ref.kappa_reference(v, spacing, rounded=True)
    med, mad = stats(v, spacing)
    assert med == med_ref
    assert mad == pytest.approx(mad_ref, rel=2**-23, abs=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(300, 200), (64, 64, 16), (5, 70, 100)])
def test_parallel_blocks_give_the_serial_result(shape, dtype, rng):
    """Blocks of rows (not aligned with planes) each with their own histogram: the same answer, bit for bit."""
    v = smooth_noisy(rng, shape, 1, dtype)
    C = v.shape[0]
    if len(shape) == 2:
        v3, nplane, ih = v, shape[0], (0.0, 1.0, 1 / 0.7)
    else:
        v3, nplane, ih = v.reshape(C, shape[0] * shape[1], shape[2]), shape[1], (0.5, 1.0, 1 / 0.7)
    serial = kk.median_mad(v3, nplane, *ih, 1)[:2]  # the mean is NaN unless the MAD is 0
    for nblocks in (2, 3, 7):
        assert kk.median_mad(v3, nplane, *ih, nblocks)[:2] == serial
    h = (1.0, 0.7) if len(shape) == 2 else (2.0, 1.0, 0.7)
    _, med_ref, mad_ref, _ = ref.kappa_reference(v, h)
    assert serial[0] == pytest.approx(med_ref, rel=1e-6) and serial[1] == pytest.approx(mad_ref, rel=1e-6)
    assert stats(v, h) == serial  # the backend's own (parallel) choice


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_piecewise_constant_falls_back_to_the_mean(ndim, dtype, rng):
    """Ties: more than half the faces are 0 (flat regions) -> MAD 0 -> mean face gradient."""
    shape = {1: (40,), 2: (30, 31), 3: (12, 13, 14)}[ndim]
    labels = np.zeros(shape, int)
    for _ in range(3):
        sl = tuple(slice(int(a), int(a) + n // 3) for a, n in zip(rng.integers(0, [n // 2 for n in shape]), shape))
        labels[sl] += 1
    v = (0.7 * labels).astype(dtype)[None]
    h = SPACING[ndim]
    k_ref, med_ref, mad_ref, mean_ref = ref.kappa_reference(v, h)
    assert mad_ref == 0 and mean_ref > 0
    med, mad, mean = CPU.face_gradient_mad(v, h)
    assert (med, mad) == (med_ref, 0.0)
    tol = MEAN_TOL[dtype]
    assert mean == pytest.approx(mean_ref, rel=tol)
    assert pdediff.estimate_kappa(v, h) == pytest.approx(k_ref, rel=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ties_at_an_unrepresentable_value_keep_mad_zero(dtype):
    """A ramp with spacing 0.3: every face is 1/0.3, not a float32 -- still MAD 0 and the mean fallback."""
    v = np.arange(50, dtype=dtype)[None]
    k_ref, _, mad_ref, mean_ref = ref.kappa_reference(v, (0.3,))
    assert mad_ref == 0
    _, mad, mean = CPU.face_gradient_mad(v, (0.3,))
    assert mad == 0 and mean == pytest.approx(mean_ref, rel=1e-6)
    assert pdediff.estimate_kappa(v, (0.3,)) == pytest.approx(k_ref, rel=1e-6)


def test_constant_and_faceless_images():
    f = FACTORS["exponential"]
    assert pdediff.estimate_kappa(np.zeros((1, 5, 5)), (1.0, 1.0)) == pytest.approx(f)  # MAD 0, mean 0 -> 1
    assert pdediff.estimate_kappa(np.ones((1, 1)), (1.0,)) == 1.0  # no face at all
    assert pdediff.estimate_kappa(np.ones((2, 1, 1, 1)), (1.0, 1.0, 1.0)) == 1.0
    assert pdediff.estimate_kappa(np.full((1, 4, 4), np.nan), (1.0, 1.0)) == pytest.approx(f)  # only NaN faces
    assert np.isnan(CPU.face_gradient_mad(np.full((1, 4, 4), np.nan), (1.0, 1.0))).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,channels", [((40,), 1), ((20, 23), 1), ((20, 23), 3), ((8, 9, 10), 1)])
def test_nan_input_skips_nan_faces(shape, channels, dtype, rng):
    v = smooth_noisy(rng, shape, channels, dtype)
    flat = v.reshape(-1)
    flat[rng.choice(flat.size, max(2, flat.size // 50), replace=False)] = np.nan
    h = (1.0,) * len(shape)
    k_ref, med_ref, mad_ref, _ = ref.kappa_reference(v, h)  # NumPy on the non-NaN magnitudes
    med, mad = stats(v, h)
    assert med == pytest.approx(med_ref, rel=1e-6) and mad == pytest.approx(mad_ref, rel=1e-6)
    assert pdediff.estimate_kappa(v, h) == pytest.approx(k_ref, rel=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_infinite_input_counts_inf_faces(dtype, rng):
    v = smooth_noisy(rng, (30, 30), 1, dtype)
    v[0, 3, 4] = np.inf  # its 4 faces are +inf
    v[0, 10, 10:13] = np.inf  # inf - inf between them: NaN, skipped
    with np.errstate(invalid="ignore"):
        k_ref, med_ref, mad_ref, _ = ref.kappa_reference(v, (1.0, 1.0))
    med, mad = stats(v, (1.0, 1.0))
    assert med == pytest.approx(med_ref, rel=1e-6) and mad == pytest.approx(mad_ref, rel=1e-6)
    assert pdediff.estimate_kappa(v, (1.0, 1.0)) == pytest.approx(k_ref, rel=1e-6)


@pytest.mark.parametrize(
    "dtype,scale",
    [(np.float32, 1e-30), (np.float32, 1e30), (np.float64, 1e-30), (np.float64, 1e30),
     # float64 magnitudes outside float32's range: rescaled by a power of two before rounding
     (np.float64, 1e-100), (np.float64, 1e100), (np.float64, 1e-150), (np.float64, 1e150)],
)
@pytest.mark.parametrize("channels", [1, 3])
def test_tiny_and_huge_magnitudes(dtype, scale, channels, rng):
    v = smooth_noisy(rng, (9, 10, 11), channels, dtype, scale=scale)
    h = (1.0, 0.5, 2.0)
    k_ref, med_ref, mad_ref, _ = ref.kappa_reference(v, h)
    med, mad = stats(v, h)
    assert med == pytest.approx(med_ref, rel=1e-6) and mad == pytest.approx(mad_ref, rel=1e-6)
    assert pdediff.estimate_kappa(v, h) == pytest.approx(k_ref, rel=1e-6)


def test_windows_cover_their_bins():
    """Every magnitude whose key falls in bins b0..b1 has its square inside the LOW pass's windows."""
    rng = np.random.default_rng(3)
    s = np.concatenate([rng.random(20000) * 3.0, [0.0, 1.0, 2.0, np.inf]])
    for dev, center in ((False, 0.0), (True, 1.2), (True, 0.0), (True, np.inf)):
        f = s.astype(np.float32)
        with np.errstate(invalid="ignore"):  # inf - inf
            x = np.abs(f.astype(np.float64) - center).astype(np.float32) if dev else f
        keys = x.view(np.uint32) >> 16
        for b0 in np.unique(keys)[::97]:
            for b1 in (b0, b0 + 1, b0 + 5):
                w = kk.windows(int(b0), int(b1), dev, 1.0, center)
                inside = ((s * s >= w[0]) & (s * s <= w[1])) | ((s * s >= w[2]) & (s * s <= w[3]))
                assert inside[(keys >= b0) & (keys <= b1)].all()


@st.composite
def images(draw):
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 7), min_size=ndim, max_size=ndim)))
    channels = draw(st.sampled_from([1, 2]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**32 - 1))
    kind = draw(st.sampled_from(["noise", "integers", "blocks"]))
    scale = draw(st.sampled_from([1e-30, 1e-3, 1.0, 255.0, 1e30]))
    r = np.random.default_rng(seed)
    if kind == "noise":
        v = r.standard_normal((channels, *shape))
    elif kind == "integers":
        v = r.integers(0, 4, (channels, *shape)).astype(float)
    else:
        v = np.repeat(r.integers(0, 3, (channels, 1, *shape[1:])), shape[0], axis=1).astype(float)
    spacing = tuple(draw(st.lists(st.sampled_from([0.3, 0.5, 1.0, 2.0, 3.7]), min_size=ndim, max_size=ndim)))
    return (scale * v).astype(dtype), spacing


@given(images())
def test_property_median_and_mad_match_numpy(case):
    """The documented bound: median within 2^-24 relatively, MAD within ~2^-23 (median + MAD) of NumPy's."""
    v, h = case
    k_ref, med_ref, mad_ref, mean_ref = ref.kappa_reference(v, h)
    k = pdediff.estimate_kappa(v, h)
    med, mad, mean = CPU.face_gradient_mad(v, h)
    if n_faces(v.shape[1:]) == 0:
        assert k == k_ref == 1.0
        return
    assert med == pytest.approx(med_ref, rel=1e-6)
    assert abs(mad - mad_ref) <= 2**-22 * (med_ref + mad_ref)
    if mad_ref > 1e-5 * med_ref:  # not clustered at the float32 resolution: the kappa is today's
        assert k == pytest.approx(k_ref, rel=1e-6)
    if mad == 0 and mad_ref == 0:  # the same fallback
        tol = MEAN_TOL[v.dtype.type]
        assert mean == pytest.approx(mean_ref, rel=tol) and k == pytest.approx(k_ref, rel=tol)


# -- memory: auto adds at most one input-sized float32 array to the peak ------------------------------------

_CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import pdediff

    def status(key):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024

    def reset_peak():
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")

    try:
        reset_peak()
    except OSError as exc:
        print(json.dumps({"skip": f"/proc/self/clear_refs not writable: {exc}"}))
        sys.exit(0)
    rng = np.random.default_rng(0)
    for n in (8, 40):  # compile (or load) the serial and parallel kernels
        small = rng.random((n,) * 3, dtype=np.float32)
        pdediff.perona_malik(small, kappa="auto", num_iter=1)
        pdediff.perona_malik(small, kappa=1.0, num_iter=1)
    vol = rng.standard_normal((128,) * 3, dtype=np.float32)
    _, info = pdediff.perona_malik(vol, kappa="auto", num_iter=1, return_info=True)  # warm, unmeasured

    def peak(**kw):
        reset_peak()
        base = status("VmRSS")
        pdediff.perona_malik(vol, num_iter=1, **kw)
        return status("VmHWM") - base

    fixed = peak(kappa=info.kappa)
    auto = peak(kappa="auto")
    print(json.dumps({"auto": auto, "fixed": fixed, "kappa": info.kappa, "nbytes": vol.nbytes}))
    """
)


def run_memory_child(prelude: str = "") -> dict:
    """Run :data:`_CHILD` (after ``prelude``) in a fresh interpreter; its JSON line as a dict."""
    if not os.path.exists("/proc/self/status"):
        pytest.skip("needs Linux /proc")
    # Large blocks always mmap'd (no dynamic threshold): freed memory leaves the RSS at once, so the
    # peaks do not depend on what earlier calls left in the heap.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
    proc = subprocess.run([sys.executable, "-c", prelude + _CHILD], capture_output=True, text=True, env=env,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if "skip" in out:
        pytest.skip(out["skip"])
    return out


def test_auto_kappa_adds_at_most_one_float32_array_to_the_peak():
    out = run_memory_child()
    extra = out["auto"] - out["fixed"]
    assert extra <= out["nbytes"], (
        f"kappa='auto' peak {out['auto'] / 2**20:.1f} MiB vs fixed {out['fixed'] / 2**20:.1f} MiB: "
        f"+{extra / 2**20:.1f} MiB > one 128^3 float32 array ({out['nbytes'] / 2**20:.0f} MiB)"
    )
