"""Every process's prior against the fully degraded training data it stands for: a kernel two-sample test."""

import pytest

torch = pytest.importorskip("torch")

from pdediff.catalogue import PROCESS_NAMES  # noqa: E402
from pdediff.torch import ColdDiffusion, make_process  # noqa: E402
from pdediff.torch import data as tdata  # noqa: E402


def _mmd_p_value(a: torch.Tensor, b: torch.Tensor, n_perm: int = 100, seed: int = 0) -> float:
    """Permutation p-value of the unbiased squared MMD (Gaussian kernel, median-distance bandwidth).

    Gretton et al., "A kernel two-sample test" (JMLR 2012): small p-values say the two samples come from
    different distributions.
    """
    z = torch.cat([a.reshape(len(a), -1), b.reshape(len(b), -1)]).double()
    d2 = torch.cdist(z, z) ** 2
    k = torch.exp(-d2 / d2[d2 > 0].median())
    n, m = len(a), len(b)

    def stat(idx):
        x, y = idx[:n], idx[n:]
        kxx, kyy = k[x][:, x], k[y][:, y]
        return ((kxx.sum() - kxx.trace()) / (n * (n - 1)) + (kyy.sum() - kyy.trace()) / (m * (m - 1))
                - 2 * k[x][:, y].mean()).item()

    g = torch.Generator().manual_seed(seed)
    s0 = stat(torch.arange(n + m))
    hits = sum(stat(torch.randperm(n + m, generator=g)) >= s0 for _ in range(n_perm))
    return (1 + hits) / (1 + n_perm)


def _digits(n=450):
    """``n`` digits in a seeded random order (the data set is grouped by writer: a split by position is not
    two samples of one distribution)."""
    x = tdata.digits().double()
    return x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:n]]


def _top_and_prior(p, data, n=150, seed=1):
    """``n`` draws of q(x_{K-1}) (held-out images degraded by ``add_noise``) and ``n`` prior draws."""
    g = torch.Generator().manual_seed(seed)
    held_out = data[-n:]
    p.fit(data[:-n])
    top = p.add_noise(held_out, torch.randn(held_out.shape, generator=g, dtype=held_out.dtype),
                      torch.full((n,), p.t_max))
    return top, p.sample_prior(n, generator=g)


@pytest.mark.parametrize("name", PROCESS_NAMES)
def test_prior_matches_the_fully_degraded_data(name):
    data = _digits()
    p = make_process(name, image_size=8, config={"num_train_timesteps": 10})
    top, prior = _top_and_prior(p, data)
    assert _mmd_p_value(prior, top) > 0.01


def test_perona_malik_prior_keeps_the_edges_a_constant_prior_loses():
    """With a small edge threshold Perona–Malik leaves edges after every level: the fully degraded images are
    not constant.  The whole-image mixture passes the two-sample test; constant images with the same
    per-image means (the prior of earlier versions) fail it -- the test has the power to tell."""
    data = _digits()
    p = ColdDiffusion(num_train_timesteps=6, operator="perona_malik", kappa=0.1, iters_per_level=2)
    top, prior = _top_and_prior(p, data)
    assert top.std((-1, -2)).mean() > 0.2  # far from flat
    assert _mmd_p_value(prior, top) > 0.01
    flat = top.mean((-1, -2), keepdim=True).expand_as(top)
    assert _mmd_p_value(flat, top) < 0.01


def test_runs_saved_with_the_retired_mixture_prior_key_still_load():
    """run.json files written before the prior changed carry ``prior_components``: they load with a
    DeprecationWarning naming the key (the trained model does not depend on it); other unknown keys are refused."""
    from pdediff.errors import ParameterError
    from pdediff.torch import make_process

    with pytest.warns(DeprecationWarning, match="prior_components"):
        p = make_process("cold-pm", image_size=8, config={"num_train_timesteps": 4, "prior_components": 4})
    assert p.num_train_timesteps == 4 and not hasattr(p, "prior_components")
    with pytest.raises(ParameterError, match="prior_componentz"):
        make_process("cold-pm", image_size=8, config={"prior_componentz": 4})
