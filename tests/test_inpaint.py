"""pdediff.restoration.inpaint: harmonic/biharmonic against independent SciPy systems and scikit-image,
exact cases, Perona–Malik edge continuation and invariants, the learned dispatch (fake model), input errors,
and the synthetic masks of pdediff.data."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.sparse.linalg import spsolve

import pdediff
from pdediff.data import block_mask, crack_mask
from pdediff.errors import StepLimitError
from pdediff.restoration import InpaintResult, inpaint

# -- independent references -----------------------------------------------------------------------


def neumann_laplacian(shape, h):
    """Full-grid cell-centred Laplacian, zero-flux border, as Kronecker sums of 1-D second differences."""
    total = None
    for a, n in enumerate(shape):
        main = -2.0 * np.ones(n)
        main[0] += 1
        main[-1] += 1
        d1 = sp.diags([np.ones(n - 1), main, np.ones(n - 1)], [-1, 0, 1]) / h[a] ** 2
        pre = sp.identity(int(np.prod(shape[:a])))
        post = sp.identity(int(np.prod(shape[a + 1:])))
        term = sp.kron(sp.kron(pre, d1), post)
        total = term if total is None else total + term
    return sp.csr_matrix(total)


def reference_fill(image, mask, h, kind="harmonic"):
    """spsolve of (L u)_M = 0 (or (L L u)_M = 0) with u_K fixed."""
    L = neumann_laplacian(mask.shape, h)
    if kind == "biharmonic":
        L = sp.csr_matrix(L @ L)
    M = np.flatnonzero(mask)
    K = np.flatnonzero(~mask)
    u = image.astype(np.float64).ravel()
    x = spsolve(sp.csc_matrix(L[M][:, M]), -(L[M][:, K] @ u[K]))
    out = u.copy()
    out[M] = x
    return out.reshape(image.shape)


def psnr_in(ref, out, mask, data_range=1.0):
    return 10 * np.log10(data_range**2 / np.mean((ref[mask] - out[mask]) ** 2))


def random_mask(shape, rng, frac=0.3):
    m = rng.random(shape) < frac
    m.flat[0] = False
    return m


# -- harmonic against spsolve -------------------------------------------------------------------------

CASES = [((40,), (1.0,)), ((40,), (0.3,)), ((14, 17), (1.0, 1.0)), ((14, 17), (2.0, 0.5)),
         ((6, 7, 8), (1.0, 1.0, 1.0)), ((6, 7, 8), (3.0, 1.0, 0.5))]


@pytest.mark.parametrize("shape,h", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("solver", ["direct", "cg"])
def test_harmonic_matches_spsolve(shape, h, dtype, solver, rng):
    img = rng.random(shape).astype(dtype)
    mask = random_mask(shape, rng, 0.4)
    ref = reference_fill(img, mask, h)
    out, info = inpaint(img, mask, spacing=h, solver=solver, tol=1e-12, return_info=True)
    assert out.dtype == dtype and out.shape == shape
    assert info.solver == solver and info.residual <= 1e-12
    atol = 2e-6 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(out, ref, rtol=0, atol=atol)


def test_biharmonic_matches_spsolve_anisotropic(rng):
    img = rng.random((15, 13))
    mask = random_mask(img.shape, rng, 0.3)
    ref = reference_fill(img, mask, (2.0, 0.7), "biharmonic")
    np.testing.assert_allclose(inpaint(img, mask, method="biharmonic", spacing=(2.0, 0.7)), ref, atol=1e-8)


def test_solve_is_not_time_stepping_and_reports_work():
    img = np.random.default_rng(1).random((64, 64))
    mask = block_mask(img.shape, seed=2)
    _, info = inpaint(img, mask, return_info=True)
    # auto: the compiled SSOR-CG; its iterations grow with the hole's width, far below one per pixel
    assert isinstance(info, InpaintResult) and info.solver == "cg" and 0 < info.iterations < 40
    assert info.n_missing == mask.sum() and info.residual <= 1e-8
    _, info = inpaint(img, mask, solver="direct", return_info=True)
    assert info.solver == "direct" and info.iterations <= 1


# -- the compiled harmonic CG against spsolve ----------------------------------------------------------


@given(st.integers(0, 2**32 - 1), st.sampled_from([(30,), (9, 13), (5, 6, 7)]), st.floats(0.05, 0.9),
       st.sampled_from([np.float32, np.float64]))
def test_compiled_cg_matches_spsolve_random_masks(seed, shape, frac, dtype):
    rng = np.random.default_rng(seed)
    h = tuple(rng.uniform(0.3, 3.0, len(shape)))
    mask = rng.random(shape) < frac
    if mask.all():
        mask.flat[rng.integers(mask.size)] = False
    img = rng.standard_normal(shape + (2,)).astype(dtype)
    out, info = inpaint(img, mask, spacing=h, channel_axis=-1, solver="cg", tol=1e-12, return_info=True)
    assert info.solver == "cg" and info.residual <= 1e-12
    atol = 1e-5 if dtype == np.float32 else 1e-9
    for c in range(2):
        np.testing.assert_allclose(out[..., c], reference_fill(img[..., c], mask, h), rtol=0, atol=atol)


def test_compiled_cg_kernel_jacobi_and_ssor_agree_and_cap():
    """The kernel directly: both preconditioners reach the SciPy solution; the cap stops the iteration
    and reports the residual reached."""
    from pdediff.kernels.cpu.inpaint import harmonic_pcg, harmonic_setup

    rng = np.random.default_rng(3)
    mask = block_mask((40, 50), seed=1, min_size=0.3, max_size=0.4)
    img = rng.random((40, 50))
    mflat = mask.ravel()
    w = np.array([1.0, 0.25])  # spacing (1, 2)
    offs, nbr, diag, b, scale = harmonic_setup(mflat, np.flatnonzero(mflat), np.array([40, 50]), np.array([50, 1]),
                                               np.array([50, 1]), 0, 1, w, img.ravel())
    assert scale == 1.0 and np.array_equal(offs, np.flatnonzero(mflat))
    ref = reference_fill(img, mask, (1.0, 2.0))[mask]
    iters = {}
    for omega in (0.0, 1.0, 1.8):
        x = np.zeros((1, b.shape[1] + 1))
        it, rel = harmonic_pcg(nbr, np.repeat(w, 2), diag, b, x, 1e-12, 10_000, omega)
        assert rel <= 1e-12 and x[0, -1] == 0.0
        np.testing.assert_allclose(x[0, :-1], ref, atol=1e-9)
        iters[omega] = it
    assert iters[1.8] < iters[1.0] < iters[0.0]  # SSOR pays on a wide hole
    x = np.zeros((1, b.shape[1] + 1))
    it, rel = harmonic_pcg(nbr, np.repeat(w, 2), diag, b, x, 1e-12, 3, 1.8)
    assert it == 3 and 1e-12 < rel < 1.0


def test_compiled_cg_iteration_cap_and_layouts():
    img = np.random.default_rng(0).random((3, 40, 40))
    m = block_mask((40, 40), seed=0, min_size=0.5, max_size=0.6)
    _, info = inpaint(img, m, channel_axis=0, return_info=True)
    assert info.iterations > 3
    with pytest.raises(RuntimeError, match=rf"max_iter={info.iterations - 1} conjugate-gradient"):
        inpaint(img, m, channel_axis=0, max_iter=info.iterations - 1)
    out = inpaint(img, m, channel_axis=0, max_iter=info.iterations)
    # channel axis first, last or none: the same numbers (read/written through strides)
    np.testing.assert_array_equal(np.moveaxis(inpaint(np.moveaxis(img, 0, -1), m, channel_axis=-1), -1, 0), out)
    np.testing.assert_allclose(inpaint(img[1], m), out[1], atol=1e-12)
    # the input is never written to
    assert np.array_equal(img, np.random.default_rng(0).random((3, 40, 40)))


# -- known pixels bit for bit, every method -----------------------------------------------------


class FakeRun:
    """Stands in for pdediff.torch.Run: records its inputs, fills the mask with a constant."""

    def __init__(self, image_shape, fill=0.5):
        self.image_shape = image_shape
        self.fill = fill
        self.calls = []

    def repaint(self, images, mask, *, seed=0, steps=None, jump_length=10, jump_n_sample=10, progress=False,
                batch_size=1000):
        self.calls.append({"images": images.copy(), "mask": mask.copy(), "seed": seed, "steps": steps,
                           "jump_length": jump_length, "jump_n_sample": jump_n_sample, "progress": progress})
        out = images.copy()
        out[np.broadcast_to(mask, out.shape)] = self.fill
        return out


@pytest.mark.parametrize("method", ["harmonic", "biharmonic", "perona_malik", "learned"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_known_pixels_unchanged_bit_for_bit(method, dtype, rng):
    if dtype == np.uint8:
        img = rng.integers(0, 256, (24, 20, 3)).astype(np.uint8)
    else:
        img = rng.random((24, 20, 3)).astype(dtype) * dtype(0.9) + dtype(0.05)
    img[5, 5, 0] = img[5, 5, 0] if dtype == np.uint8 else dtype(1 / 3)  # a value not exactly representable
    mask = crack_mask((24, 20), seed=3)
    kw = {"model": FakeRun((3, 24, 20))} if method == "learned" else {}
    out = inpaint(img, mask, method=method, channel_axis=-1, **kw)
    want = np.float32 if dtype == np.float32 else np.float64
    assert out.dtype == want and out.shape == img.shape
    assert np.array_equal(out[~mask], img[~mask].astype(want))
    assert np.isfinite(out).all()


# -- exact cases ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["harmonic", "biharmonic"])
def test_one_pixel_in_linear_ramp_is_exact(method):
    yy, xx = np.mgrid[:16, :16]
    ramp = 0.3 * xx - 0.2 * yy + 1.0
    mask = np.zeros(ramp.shape, bool)
    mask[8, 7] = True
    damaged = ramp.copy()
    damaged[8, 7] = np.nan
    out = inpaint(damaged, mask, method=method)
    assert abs(out[8, 7] - ramp[8, 7]) < 1e-12


@pytest.mark.parametrize("shape", [(40, 50), (12, 14, 16)])
def test_linear_ramp_with_large_hole_is_reproduced(shape):
    grids = np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij")
    ramp = sum((a + 1) * 0.1 * g for a, g in enumerate(grids))
    mask = np.zeros(shape, bool)
    mask[tuple(slice(2, n - 2) for n in shape)] = True  # large, but not touching the (Neumann) border
    out = inpaint(ramp, mask, tol=1e-12)
    np.testing.assert_allclose(out, ramp, atol=1e-9)


def test_1d_harmonic_is_linear_interpolation():
    x = np.array([0.0, 0, 0, 0, 4.0, 0, 0, 1.0])
    mask = np.array([0, 1, 1, 1, 0, 1, 1, 0], dtype=np.uint8)
    x[0] = 0.0
    out = inpaint(x, mask)
    np.testing.assert_allclose(out, [0, 1, 2, 3, 4, 3, 2, 1], atol=1e-12)
    # Neumann border: a hole at the end takes the last known value
    m2 = np.array([0, 0, 0, 0, 0, 1, 1, 1], bool)
    np.testing.assert_allclose(inpaint(x, m2)[5:], 0.0 * x[5:] + x[4], atol=1e-12)


# -- colour ---------------------------------------------------------------------------------------


def test_harmonic_channels_are_independent(rng):
    img = rng.random((20, 3, 18))  # channel axis in the middle
    mask = crack_mask((20, 18), seed=5)
    joint = inpaint(img, mask, channel_axis=1)
    for c in range(3):
        np.testing.assert_allclose(joint[:, c], inpaint(img[:, c], mask), rtol=0, atol=1e-12)


def _two_channel_edge():
    """A vertical edge in two channels: strong in channel 0, faint (below kappa) in channel 1;
    a horizontal crack across it."""
    xx = np.arange(48)[None, :] * np.ones((48, 1))
    img = np.stack([np.where(xx < 24, 0.1, 0.9), np.where(xx < 24, 0.50, 0.53)], axis=-1)
    mask = np.zeros((48, 48), bool)
    mask[22:25, :] = True
    return img, mask


def test_perona_malik_channels_coupled():
    img, mask = _two_channel_edge()
    kw = {"method": "perona_malik", "kappa": 0.1, "sigma": 0.0}
    joint = inpaint(img, mask, channel_axis=-1, **kw)
    separate = np.stack([inpaint(img[..., c], mask, **kw) for c in range(2)], axis=-1)
    assert np.abs(joint - separate).max() > 1e-3
    # the faint channel's edge is kept by the shared conductance, smeared when diffused alone
    err_joint = np.abs(joint[..., 1] - img[..., 1])[mask].sum()
    err_sep = np.abs(separate[..., 1] - img[..., 1])[mask].sum()
    assert err_joint < 0.5 * err_sep


# -- biharmonic against scikit-image ----------------------------------------------------------------


@pytest.mark.parametrize("shape", [(40, 44), (10, 12, 11)])
def test_biharmonic_matches_skimage(shape, rng):
    from skimage.restoration import inpaint_biharmonic

    smooth = np.cumsum(np.cumsum(rng.standard_normal(shape), axis=0), axis=-1)
    img = (smooth - smooth.min()) / np.ptp(smooth)
    mask = random_mask(shape, rng, 0.15)
    mask[tuple(slice(2, 7) for _ in shape)] = True
    ref = inpaint_biharmonic(img, mask)
    ours = inpaint(img, mask, method="biharmonic")
    # scikit-image solves the same system (both use SuperLU, different orderings: rounding only)
    # and then clips to the known range, which pdediff does not: compare after the same clip
    clipped = np.clip(ours, img[~mask].min(), img[~mask].max())
    np.testing.assert_allclose(clipped, ref, rtol=0, atol=1e-9)


# -- Perona–Malik ---------------------------------------------------------------------------------


def _step_with_cracks():
    """A vertical step edge (contrast 0.6), 2 % noise, a 3-px crack across the edge and a 2-px one beside it."""
    xx = np.arange(64)[None, :] * np.ones((64, 1))
    clean = np.where(xx < 30, 0.2, 0.8)
    img = clean + 0.02 * np.random.default_rng(0).standard_normal(clean.shape)
    mask = np.zeros(clean.shape, bool)
    mask[30:33, :] = True
    mask[10:40, 45:47] = True
    return clean, img, mask


def test_perona_malik_continues_edges_better_than_harmonic():
    clean, img, mask = _step_with_cracks()
    harmonic = inpaint(img, mask)
    # kappa between the noise's gradients (~0.03) and the edge's (0.6 per pixel)
    pm, info = inpaint(img, mask, method="perona_malik", kappa=0.05, return_info=True)
    assert psnr_in(clean, pm, mask) > psnr_in(clean, harmonic, mask) + 5.0
    assert info.num_iter == 5 and info.dt == 0.25 and info.kappa == 0.05 and info.conductance == "exponential"
    # the automatic kappa comes from the known pixels' gradients only
    _, auto = inpaint(img, mask, method="perona_malik", num_iter=0, return_info=True)
    _, filled_elsewhere = inpaint(np.where(mask, 5.0, img), mask, method="perona_malik", num_iter=0, return_info=True)
    assert 0 < auto.kappa < 0.05 and auto.kappa == filled_elsewhere.kappa


def test_perona_malik_maximum_principle_and_bounded_steps(rng):
    img = rng.random((30, 30, 3))
    mask = block_mask((30, 30), seed=1, max_size=0.4)
    out = inpaint(img, mask, method="perona_malik", channel_axis=-1, dt=50.0, num_iter=5)
    start = inpaint(img, mask, method="biharmonic", channel_axis=-1)
    # the biharmonic start overshoots the known data's range here; the steps never leave the start's range
    assert any(start[..., c].max() > img[..., c][~mask].max() or start[..., c].min() < img[..., c][~mask].min()
               for c in range(3))
    for c in range(3):
        assert start[..., c].min() - 1e-12 <= out[..., c].min() and out[..., c].max() <= start[..., c].max() + 1e-12
    assert np.abs(out - start).max() > 1e-3  # and they do act
    with pytest.raises(StepLimitError, match="num_iter"):
        inpaint(img[..., 0], mask, method="perona_malik", num_iter=10**6)
    # zero steps: the biharmonic fill
    np.testing.assert_array_equal(inpaint(img[..., 0], mask, method="perona_malik", num_iter=0),
                                  inpaint(img[..., 0], mask, method="biharmonic"))


def test_perona_malik_3d_and_spacing(rng):
    img = rng.random((8, 10, 12)).astype(np.float32)
    mask = random_mask(img.shape, rng, 0.2)
    out = inpaint(img, mask, method="perona_malik", spacing=(2.0, 1.0, 1.0))
    start = inpaint(img, mask, method="biharmonic", spacing=(2.0, 1.0, 1.0))
    assert out.dtype == np.float32 and np.array_equal(out[~mask], img[~mask])
    assert start.min() - 1e-6 <= out.min() and out.max() <= start.max() + 1e-6


# -- hypothesis: known pixels fixed, maximum principle ----------------------------------------------


@given(arrays(np.bool_, (9, 11)), arrays(np.float64, (9, 11), elements=st.floats(-5, 5)))
def test_harmonic_invariants_random_masks(mask, img):
    if mask.all():
        return
    # the exact solution obeys the maximum principle; an iterative one to within (condition number) x tol
    out = inpaint(img, mask, tol=1e-13)
    assert np.array_equal(out[~mask], img[~mask])
    k = img[~mask]
    assert k.min() - 1e-9 <= out.min() and out.max() <= k.max() + 1e-9


# -- the learned dispatch (a fake model; the model itself is tested elsewhere) ----------------------


def test_learned_dispatch_uint8_scaling_and_arguments():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (16, 12, 3)).astype(np.uint8)
    mask = block_mask((16, 12), seed=0, min_size=0.3, max_size=0.4)
    run = FakeRun((3, 16, 12), fill=1.0)
    out, info = inpaint(img, mask, method="learned", channel_axis=-1, model=run, seed=7, num_iter=5,
                        return_info=True)
    call = run.calls[0]
    assert call["images"].shape == (1, 3, 16, 12) and call["images"].dtype == np.float32
    assert call["mask"].shape == (1, 1, 16, 12) and call["mask"].dtype == np.bool_
    assert call["seed"] == 7 and call["steps"] == 5 and info.num_iter == 5
    assert call["jump_length"] == 10 and call["jump_n_sample"] == 10  # None: the model's own defaults
    inpaint(img, mask, method="learned", channel_axis=-1, model=run, jump_length=3, jump_n_sample=2)
    assert run.calls[1]["jump_length"] == 3 and run.calls[1]["jump_n_sample"] == 2 and run.calls[1]["steps"] is None
    np.testing.assert_allclose(call["images"][0][:, ~mask], (np.moveaxis(img, -1, 0)[:, ~mask] / 255.0) * 2 - 1,
                               atol=1e-6)
    assert np.all(call["images"][0][:, mask] == 0)  # missing pixels are not shown to the model
    assert out.dtype == np.float64 and np.all(out[mask] == 255.0)  # +1 maps back to the top of uint8's range


def test_learned_dispatch_float_and_grey():
    img = np.linspace(0, 1, 64).reshape(8, 8)
    mask = np.zeros((8, 8), bool)
    mask[2:4, 2:6] = True
    img_nan = np.where(mask, np.nan, img)
    out = inpaint(img_nan, mask, method="learned", model=FakeRun((1, 8, 8), fill=0.0))
    assert np.allclose(out[mask], 0.5) and np.array_equal(out[~mask], img[~mask])


def test_learned_errors():
    img = np.random.default_rng(0).random((8, 8))
    mask = np.zeros((8, 8), bool)
    mask[1, 1] = True
    with pytest.raises(ValueError, match="model"):
        inpaint(img, mask, method="learned")
    with pytest.raises(ValueError, match=r"\(1, 8, 8\).*\(3, 8, 8\)"):
        inpaint(img, mask, method="learned", model=FakeRun((3, 8, 8)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        inpaint(img * 2, mask, method="learned", model=FakeRun((1, 8, 8)))
    with pytest.raises(TypeError, match="model"):
        inpaint(img, mask, method="learned", model=object())
    with pytest.raises(ValueError, match="2"):
        inpaint(np.zeros((4, 8, 8)), np.zeros((4, 8, 8), bool), method="learned", model=FakeRun((1, 8, 8)))
    with pytest.raises(ValueError, match="kappa does not apply"):
        inpaint(img, mask, method="learned", model=FakeRun((1, 8, 8)), kappa=1.0)
    with pytest.raises(ValueError, match="jump_length must be a positive integer"):
        inpaint(img, mask, method="learned", model=FakeRun((1, 8, 8)), jump_length=0)
    with pytest.raises(TypeError, match="jump_n_sample"):
        inpaint(img, mask, method="learned", model=FakeRun((1, 8, 8)), jump_n_sample=2.5)
    for method in ("harmonic", "perona_malik"):
        with pytest.raises(ValueError, match="jump_n_sample does not apply to method=.*only to 'learned'"):
            inpaint(img, mask, method=method, jump_n_sample=3)
        with pytest.raises(ValueError, match="jump_length does not apply"):
            inpaint(img, mask, method=method, jump_length=3)


# -- input errors ----------------------------------------------------------------------------------


def test_mask_errors():
    img = np.random.default_rng(0).random((10, 12))
    with pytest.raises(ValueError, match=r"mask must have the image's spatial shape \(10, 12\)"):
        inpaint(img, np.zeros((12, 10), bool))
    with pytest.raises(TypeError, match="mask.*float64"):
        inpaint(img, np.zeros((10, 12)))
    with pytest.raises(ValueError, match="mask.*0 and 1"):
        inpaint(img, np.full((10, 12), 2))
    with pytest.raises(ValueError, match="whole image"):
        inpaint(img, np.ones((10, 12), bool))
    with pytest.raises(TypeError, match="mask"):
        inpaint(img, None)
    # empty mask: nothing to do, a float copy
    out = inpaint(img, np.zeros((10, 12), bool))
    assert np.array_equal(out, img) and out is not img
    # full-shape mask with identical channels is accepted, differing channels refused
    rgb = np.stack([img] * 3, -1)
    m = np.zeros((10, 12), bool)
    m[3:5, 4:8] = True
    np.testing.assert_array_equal(inpaint(rgb, np.stack([m] * 3, -1), channel_axis=-1),
                                  inpaint(rgb, m, channel_axis=-1))
    bad = np.stack([m, m, ~m], -1)
    with pytest.raises(ValueError, match="mask differs between channels"):
        inpaint(rgb, bad, channel_axis=-1)


def test_image_and_option_errors():
    img = np.random.default_rng(0).random((10, 12))
    m = np.zeros((10, 12), bool)
    m[4:6, 4:6] = True
    with pytest.raises(ValueError, match="NaN or infinity at known pixels"):
        inpaint(np.where(m, 0, np.nan), m)
    with pytest.raises(TypeError, match="image"):
        inpaint(img > 0.5, m)
    with pytest.raises(TypeError, match="image"):
        inpaint(img.astype(complex), m)
    with pytest.raises(ValueError, match="image must have 1 or 2 or 3 dimensions"):
        inpaint(np.zeros((2, 2, 2, 2)), np.zeros((2, 2, 2, 2), bool))
    with pytest.raises(ValueError, match="method must be one of"):
        inpaint(img, m, method="telea")
    with pytest.raises(ValueError, match="solver must be one of"):
        inpaint(img, m, solver="amg")
    with pytest.raises(ValueError, match="conductance must be one of"):
        inpaint(img, m, method="perona_malik", conductance="huber")
    with pytest.raises(ValueError, match="kappa does not apply to method='harmonic'.*'perona_malik'"):
        inpaint(img, m, kappa=0.1)
    with pytest.raises(ValueError, match="model does not apply"):
        inpaint(img, m, model=FakeRun((1, 10, 12)))
    with pytest.raises(ValueError, match="tol must be positive"):
        inpaint(img, m, tol=-1.0)
    with pytest.raises(ValueError, match="spacing"):
        inpaint(img, m, spacing=(1.0, 0.0))
    with pytest.raises(ValueError, match="kappa must be positive"):
        inpaint(img, m, method="perona_malik", kappa=0.0)
    with pytest.raises(ValueError, match="dt must be positive"):
        inpaint(img, m, method="perona_malik", dt=-1.0)
    with pytest.raises(ValueError, match="channel_axis"):
        inpaint(img, m, channel_axis=5)


def test_iteration_cap_is_reported():
    img = np.random.default_rng(0).random((40, 40))
    m = block_mask(img.shape, seed=0, min_size=0.5, max_size=0.6)
    with pytest.raises(RuntimeError, match=r"tol=1e-10.*max_iter=2 conjugate-gradient"):
        inpaint(img, m, solver="cg", tol=1e-10, max_iter=2)


def test_huge_values_do_not_overflow():
    img = np.random.default_rng(0).random((12, 12)).astype(np.float32) * np.float32(3e38)
    m = crack_mask(img.shape, seed=2)
    for method in ("harmonic", "biharmonic", "perona_malik"):
        out = inpaint(img, m, method=method)
        assert np.isfinite(out).all() and np.array_equal(out[~m], img[~m])


# -- synthetic masks ------------------------------------------------------------------------------


def test_crack_mask_properties():
    a = crack_mask((128, 96), seed=4)
    assert a.dtype == np.bool_ and a.shape == (128, 96)
    assert np.array_equal(a, crack_mask((128, 96), seed=4)) and not np.array_equal(a, crack_mask((128, 96), seed=5))
    assert 0.005 < a.mean() < 0.15
    # thin: a 4x4 square fits almost nowhere in a crack of width <= 3 (only where it crosses or curls back)
    from scipy.ndimage import binary_erosion

    assert binary_erosion(a, np.ones((4, 4), bool)).sum() < 0.08 * a.sum()
    assert crack_mask((8, 8), num_cracks=0).sum() == 0
    assert crack_mask((16, 16, 16), seed=0).any()
    one = crack_mask((64, 64), seed=0, num_cracks=1, max_width=1, branch_probability=0.0)
    assert binary_erosion(one, np.ones((2, 2), bool)).sum() == 0
    with pytest.raises(ValueError, match="shape"):
        crack_mask((10,))
    with pytest.raises(ValueError, match="max_width"):
        crack_mask((10, 10), max_width=0)
    with pytest.raises(ValueError, match="branch_probability"):
        crack_mask((10, 10), branch_probability=2.0)


def test_block_mask_properties():
    b = block_mask((60, 80), seed=1, num_blocks=1, min_size=0.25, max_size=0.25)
    ys, xs = np.nonzero(b)
    assert b.sum() == 15 * 20 and np.ptp(ys) == 14 and np.ptp(xs) == 19  # one full rectangle
    assert np.array_equal(block_mask((60, 80), seed=2), block_mask((60, 80), seed=2))
    assert block_mask((8, 9, 10), seed=0).any()
    with pytest.raises(ValueError, match="min_size must not exceed max_size"):
        block_mask((10, 10), min_size=0.5, max_size=0.2)
    with pytest.raises(ValueError, match="num_blocks"):
        block_mask((10, 10), num_blocks=-1)


@pytest.mark.parametrize("method", ["biharmonic", "perona_malik"])
def test_a_fill_beyond_float32_is_refused_not_inf(method):
    """Found by a fresh-eyes test: ±3.4e38 float32 with a hole gave ±inf (biharmonic overshoot cast to
    float32) or NaN (Perona–Malik started from it), with only NumPy's cast warning."""
    u = np.full((32, 32), 3.4e38, np.float32)
    u[::2] *= -1
    m = np.zeros((32, 32), bool)
    m[10:20, 10:20] = True
    with pytest.raises(ValueError, match="beyond float32's range.*float64"):
        pdediff.inpaint(u, m, method=method)
    r = pdediff.inpaint(u.astype(np.float64), m, method=method)
    assert np.isfinite(r).all()


# -- anisotropic and extreme spacing (issue 20) --------------------------------------------------------


def _camera(step=8):
    skimage_data = pytest.importorskip("skimage.data")
    return skimage_data.camera()[::step, ::step].astype(np.float64)


def test_biharmonic_anisotropic_matches_spsolve_or_refuses():
    """Spacing (100, 1) fills as spsolve does; spacing (1, 100) with a mask spanning the fine axis is so
    ill-conditioned that the residual (2e-10) said nothing of the error (0.7 grey levels off spsolve,
    itself off): refused with the estimated error instead of returned as converged."""
    img = _camera(4)
    m = np.zeros(img.shape, bool)
    m[:, 10:100] = True
    out, info = inpaint(img, m, method="biharmonic", spacing=(100.0, 1.0), solver="direct", return_info=True)
    ref = reference_fill(img, m, (100.0, 1.0), "biharmonic")
    assert np.abs(out - ref).max() <= 1e-6 * np.ptp(ref)
    with pytest.raises(RuntimeError, match=r"estimated relative error .* ill-conditioned .* spacing \(1.0, 100.0\)"):
        inpaint(img, m, method="biharmonic", spacing=(1.0, 100.0), solver="direct")


@pytest.mark.parametrize("h", [(1.0, 100.0), (100.0, 1.0)])
def test_biharmonic_cg_anisotropic_reaches_spsolve(h):
    """CG stopped at the residual tol=1e-8 whatever the spacing; anisotropy raises the condition number by
    about (h_max/h_min)^2, and the fill stopped 1.3e-6 of the range off spsolve (4e-4 grey levels here,
    0.34 on a 115² hole of the 128² image): the tolerance is now tightened by that factor (2e-10)."""
    img = _camera(8)
    m = np.zeros(img.shape, bool)
    m[3:60, 3:60] = True
    ref = reference_fill(img, m, h, "biharmonic")
    out, info = inpaint(img, m, method="biharmonic", spacing=h, solver="cg", return_info=True)
    assert info.solver == "cg" and info.residual <= 1e-8 / 100.0**2
    assert np.abs(out - ref).max() <= 1e-8 * np.ptp(ref)


def test_extreme_spacing_scaled_exactly_or_refused():
    """Spacing enters as 1/h^2 per axis: the linear fills run on spacing in units of a power of two near
    the finest one (exact), so 2^-160 no longer overflows the biharmonic products (NaN residual blamed on
    max_iter/tol); ratios whose couplings fall below float64's resolution are refused naming spacing."""
    img = _camera(8)
    m = np.zeros(img.shape, bool)
    m[20:40, 25:35] = True
    for method in ("harmonic", "biharmonic"):
        tiny = inpaint(img, m, method=method, spacing=(2.0**-160, 2.0**-158), solver="direct")
        unit = inpaint(img, m, method=method, spacing=(1.0, 4.0), solver="direct")
        np.testing.assert_array_equal(tiny, unit)
    for method, solver in (("biharmonic", "direct"), ("harmonic", "cg"), ("perona_malik", "auto")):
        with pytest.raises(pdediff.ParameterError, match=r"spacing.*too anisotropic.*at most") as exc:
            inpaint(img, m, method=method, spacing=(1e-50, 1e50), solver=solver)
        assert exc.value.param == "spacing"


@pytest.mark.parametrize("method", ["harmonic", "biharmonic", "perona_malik"])
def test_seed_and_tolerance_not_silently_ignored(method):
    """seed only seeds the learned sampler (it was accepted and ignored by the classical methods); a
    tolerance of 1 or more is met by x = 0 (tol=10 filled the hole with zeros): both refused by name."""
    img = np.linspace(0.0, 1.0, 20 * 24).reshape(20, 24) + 1.0
    m = np.zeros(img.shape, bool)
    m[6:12, 8:14] = True
    with pytest.raises(pdediff.ParameterError, match=r"seed does not apply to method=") as exc:
        inpaint(img, m, method=method, seed=3)
    assert exc.value.param == "seed"
    for tol in (1.0, 10.0):
        with pytest.raises(pdediff.ParameterError, match=r"tol must lie in \(0, 1\)") as exc:
            inpaint(img, m, method=method, tol=tol)
        assert exc.value.param == "tol"
    out = inpaint(img, m, method=method, tol=0.5)
    assert out[m].min() > 0.5  # a real fill of values near 1..2, not zeros


def test_spacing_refused_for_learned():
    class Run:
        image_shape = (1, 8, 8)

        def repaint(self, x, m, seed=0, progress=False, num_inference_steps=None):
            return x

    img = np.full((8, 8), 0.5)
    m = np.zeros(img.shape, bool)
    m[2:4, 2:4] = True
    with pytest.raises(pdediff.ParameterError, match=r"spacing does not apply to method='learned'") as exc:
        inpaint(img, m, method="learned", model=Run(), spacing=(2.0, 1.0))
    assert exc.value.param == "spacing"
    assert inpaint(img, m, method="learned", model=Run(), spacing=1.0).shape == img.shape
