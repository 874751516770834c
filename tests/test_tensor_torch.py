"""``pdediff.torch.tensor_diffusion``: equals the NumPy function, and its gradient passes gradcheck."""

import numpy as np
import pytest

import pdediff

torch = pytest.importorskip("torch")
from pdediff.torch import tensor_diffusion  # noqa: E402


@pytest.mark.parametrize("kw", [
    {"kind": "eed", "kappa": 0.1, "sigma": 0.0},
    {"kind": "eed", "kappa": 0.2, "sigma": 1.0, "boundary": "periodic", "spacing": (1.0, 0.8)},
    {"kind": "ced", "rho": 1.5, "alpha": 0.01, "boundary": "dirichlet"},
    {"kind": "eed", "rho": 1.0, "kappa": 0.1},
])
def test_equals_numpy(kw, rng):
    x = rng.random((2, 3 if kw.get("rho") else 1, 12, 15))
    got = tensor_diffusion(torch.from_numpy(x), num_iter=3, **kw).numpy()
    for n in range(x.shape[0]):
        ref = pdediff.tensor_diffusion(x[n], num_iter=3, channel_axis=0, **kw)
        np.testing.assert_allclose(got[n], ref, rtol=0, atol=1e-12)


def test_kappa_auto_and_float32(rng):
    x = rng.random((1, 1, 16, 16)).astype(np.float32)
    got = tensor_diffusion(torch.from_numpy(x), num_iter=2)
    assert got.dtype == torch.float32 and got.shape == x.shape
    ref = pdediff.tensor_diffusion(x[0, 0], num_iter=2)
    np.testing.assert_allclose(got[0, 0].numpy(), ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kw", [
    {"kind": "eed", "kappa": 0.3, "sigma": 0.7},
    {"kind": "ced", "rho": 1.0, "alpha": 0.05, "sigma": 0.5},
])
def test_gradcheck(kw, rng):
    x = torch.tensor(rng.random((1, 2 if kw["kind"] == "ced" else 1, 6, 7)), dtype=torch.float64,
                     requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: tensor_diffusion(t, num_iter=2, **kw), (x,), eps=1e-6,
                                    atol=1e-6)


def test_bad_parameters_name_them():
    x = torch.zeros(1, 1, 4, 4)
    with pytest.raises(pdediff.ParameterError, match="alpha"):
        tensor_diffusion(x, kind="ced", alpha=2.0)
    with pytest.raises(pdediff.StabilityError, match="dt"):
        tensor_diffusion(x, dt=1.0)
    with pytest.raises(TypeError):
        tensor_diffusion(np.zeros((1, 1, 4, 4)))


def test_torch_operator_near_the_type_limits_is_exactly_equivariant():
    """pdediff.torch.tensor_diffusion(rand * 3e38) raised "cannot convert float NaN to integer" (the structure tensor
    overflowed float32): images near the type's maximum or its smallest normal number run scaled by a power of two,
    each on its own, so a batch mixing scales gives each image its own exact result."""
    import warnings

    from skimage import data

    from pdediff.torch import tensor_diffusion as ttd

    b = torch.from_numpy(data.moon()[:24, :24].astype(np.float32))[None, None]
    ref = ttd(b, num_iter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = ttd(torch.cat([b, b * 2.0**120, b * 2.0**-120]), num_iter=3)
    torch.testing.assert_close(got[0], ref[0], rtol=0, atol=0)
    torch.testing.assert_close(got[1] / 2.0**120, ref[0], rtol=0, atol=0)
    torch.testing.assert_close(got[2] / 2.0**-120, ref[0], rtol=0, atol=0)
    assert torch.isfinite(ttd(torch.rand(1, 1, 12, 12) * 3e38, num_iter=2)).all()
    for kappa in (1e-30, 1e30):  # the limits, not inf/NaN
        assert torch.isfinite(ttd(b, kappa=kappa, num_iter=2)).all()


def test_torch_operator_refuses_non_finite_input_and_computes_half_in_float32():
    """One NaN, or an all-inf input, raised "cannot convert float NaN to integer"; finite float16 data near its
    maximum (60000) overflowed to the same message: refused by name, and half precision runs in float32."""
    from pdediff import ParameterError
    from pdediff.torch import tensor_diffusion as ttd

    x = torch.rand(1, 1, 16, 16)
    for bad in (x.clone().index_put_((torch.tensor([0]), torch.tensor([0]), torch.tensor([3]), torch.tensor([4])),
                                     torch.tensor(float("nan"))), torch.full_like(x, float("inf"))):
        with pytest.raises(ParameterError, match="x must be finite"):
            ttd(bad, num_iter=1)
    half = ((x - 0.5) * 60000).half()
    out = ttd(half, num_iter=2)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    torch.testing.assert_close(out, ttd(half.float(), num_iter=2).half(), rtol=0, atol=0)


def test_noise_level_estimate_refuses_non_finite_and_takes_large_values():
    from pdediff import ParameterError
    from pdediff.torch import estimate_noise_level

    x = torch.rand(2, 1, 16, 16)
    bad = x.clone()
    bad[1, 0, 2, 2] = float("nan")
    with pytest.raises(ParameterError, match="x must be finite"):
        estimate_noise_level(bad)
    big = estimate_noise_level(x * 1e38)  # differences of +-3e38-sized values overflowed float32: inf
    assert torch.isfinite(big).all() and big.dtype == torch.float32
    torch.testing.assert_close(big / 1e38, estimate_noise_level(x.double()).float(), rtol=1e-5, atol=0)


# ----------------------------------------------------------------------------- 3-D volumes (N, C, D, H, W)


@pytest.mark.parametrize("kw, atol", [
    ({"kind": "eed", "kappa": 0.1, "sigma": 0.0}, 1e-12),
    ({"kind": "eed", "kappa": 0.2, "sigma": 1.0, "boundary": "periodic", "spacing": (1.0, 0.8, 1.2)}, 1e-12),
    ({"kind": "eed", "rho": 1.0, "kappa": 0.1}, 1e-12),
    # alpha 0.01 across two axes: links up to several cells long, their weights differences of near-equal terms
    ({"kind": "ced", "rho": 1.5, "alpha": 0.01, "boundary": "dirichlet"}, 1e-10),
    ({"kind": "ced"}, 1e-12),
])
def test_volumes_equal_numpy(kw, atol, rng):
    """The 3-D operator (trigonometric eigenvalues, cross-product projectors, Selling's 3-D superbase) against
    the NumPy function's compiled kernels, image by image, several channels sharing one tensor."""
    x = rng.random((2, 2 if kw.get("rho") else 1, 7, 8, 9))
    got = tensor_diffusion(torch.from_numpy(x), num_iter=3, **kw).numpy()
    for n in range(x.shape[0]):
        ref = pdediff.tensor_diffusion(x[n], num_iter=3, channel_axis=0, **kw)
        np.testing.assert_allclose(got[n], ref, rtol=0, atol=atol)


def test_volume_float32_kappa_auto_and_range(rng):
    x = rng.random((1, 1, 8, 8, 8)).astype(np.float32)
    got = tensor_diffusion(torch.from_numpy(x), num_iter=2)
    assert got.dtype == torch.float32 and got.shape == x.shape
    np.testing.assert_allclose(got[0, 0].numpy(), pdediff.tensor_diffusion(x[0, 0], num_iter=2), rtol=0, atol=1e-5)
    ced = tensor_diffusion(torch.from_numpy(x), kind="ced", num_iter=3)
    assert x.min() <= float(ced.min()) and float(ced.max()) <= x.max()  # the stencil is non-negative


@pytest.mark.parametrize("kw", [
    {"kind": "eed", "kappa": 0.3, "sigma": 0.7},
    {"kind": "ced", "rho": 1.0, "alpha": 0.05, "sigma": 0.5},
    {"kind": "eed", "rho": 0.8, "kappa": 0.3, "sigma": 0.5},
])
def test_volume_gradcheck(kw, rng):
    x = torch.tensor(rng.random((1, 1, 3, 4, 5)), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: tensor_diffusion(t, num_iter=2, **kw), (x,), eps=1e-6, atol=1e-6,
                                    fast_mode=True)


@pytest.mark.parametrize("kind", ["eed", "ced"])
def test_volume_gradient_is_finite_where_eigenvalues_meet(kind):
    """A step edge: constant halves (all eigenvalues 0, the projector's average I/3) and the edge (a double
    eigenvalue); the derivatives of the closed forms are infinite there and taken as zero, never NaN."""
    x = torch.zeros(1, 1, 6, 6, 6, dtype=torch.float64)
    x[..., 3:] = 1.0
    x.requires_grad_(True)
    out = tensor_diffusion(x, kind=kind, num_iter=2, rho=1.0)
    (g,) = torch.autograd.grad(out.square().sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_volume_bad_shapes_and_spacing_name_them():
    with pytest.raises(pdediff.ParameterError, match="x must have shape"):
        tensor_diffusion(torch.zeros(1, 1, 2, 4, 4, 4))
    with pytest.raises(pdediff.ParameterError, match="spacing"):
        tensor_diffusion(torch.zeros(1, 1, 4, 4, 4), spacing=(1.0, 1.0))


@pytest.mark.parametrize("shape", [(0, 1, 5, 5), (1, 0, 5, 5), (1, 1, 0, 5), (1, 0, 3, 3, 3), (1, 1, 3, 0, 3)])
def test_empty_tensors_are_refused_as_by_the_siblings(shape):
    """An empty channel or spatial axis raised IndexError from amax, then returned an empty result, while
    heat_blur and perona_malik refuse it: now the same ValueError as theirs."""
    from pdediff.torch import heat_blur

    x = torch.rand(shape, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"x must not be empty; got shape") as e:
        tensor_diffusion(x, kind="ced", num_iter=2)
    with pytest.raises(ValueError) as sibling:
        heat_blur(x, 1.0, spatial_dims=len(shape) - 2)
    assert str(e.value) == str(sibling.value)
