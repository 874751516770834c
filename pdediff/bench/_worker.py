"""The child process of ``pdediff bench --compare``: times cases of whichever pdediff is on ``PYTHONPATH``.

``pdediff bench --compare`` runs this file *by its path* (from the current
tree) under the same interpreter, once per version and round, with
``PYTHONPATH`` naming the root of the pdediff under test (the current tree, or
a temporary extract of a git revision).  So this file imports nothing of
:mod:`pdediff.bench` — an old revision has no such modules, or others — and
calls only pdediff's public API as it has been since the first release with
the kernels (``ExplicitHeatSolver``/``ImplicitHeatSolver``/``SpectralHeatSolver``
and their ``step``/``apply_operator``/``evolve``, ``perona_malik``,
``estimate_kappa``); where a keyword was renamed (``scheme=`` → ``method=``
for AOS Perona–Malik) it uses the spelling the installed version takes.

Protocol (version 1)::

    python .../pdediff/bench/_worker.py --cases CASES.json --json OUT.json

``CASES.json`` holds ``{"protocol": 1, "cases": [{"name", "shape", "dtype",
"threads"}, ...], "budget": {"repeats", "min_sample_s", "max_number",
"max_case_s"}}``; ``name`` is a key of :data:`CASES`, ``threads`` a Numba
thread count or ``null``.  ``OUT.json`` receives ``{"protocol": 1,
"pdediff_file", "versions": {...}, "results": [...]}``, one result per case in
order: the case's fields plus ``status`` (``"ok"``; ``"unsupported"``: this
version's API cannot run the case, e.g. a missing function or keyword;
``"failed"``: it raised otherwise), ``median_s`` (seconds per call, the median
over ``repeats`` samples of ``number`` back-to-back calls; the first call,
which compiles, is not timed), ``samples_s``, ``number`` and ``error``.  The
exit status is 0 when ``OUT.json`` was written, whatever the cases did.

The inputs and parameters are those of :mod:`pdediff.bench._workload` (the
tests check that they agree): uniform noise seeded 0 for heat, scaled to
0..255 for Perona–Malik with ``kappa`` 20 and 5 iterations per call, a smooth
field plus noise for the kappa estimate.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]  # run by path: this folder's modules (cli, _spec ...) must not shadow anything

import argparse  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

import numpy as np  # noqa: E402

PROTOCOL = 1
#: As :data:`pdediff.bench._workload.N_ITER`, ``KAPPA``: Perona–Malik iterations per call, edge threshold.
N_ITER = 5
KAPPA = 20.0
#: Exceptions that mean "this version's API has no such call" (a case the baseline cannot run).
_API_ERRORS = (TypeError, AttributeError, ImportError, NotImplementedError)


# ---------------------------------------------------------------- inputs (as pdediff.bench._workload)
def heat_data(shape, dtype):
    """Uniform noise in [0, 1), seeded 0."""
    return np.random.default_rng(0).random(shape).astype(dtype)


def pm_data(shape, dtype):
    """Uniform noise in [0, 255), seeded 0."""
    return (np.random.default_rng(0).random(shape) * 255.0).astype(dtype)


def kappa_data(shape, dtype):
    """A smooth field plus 5 % noise, seeded 0."""
    import scipy.ndimage

    rng = np.random.default_rng(0)
    img = scipy.ndimage.gaussian_filter(rng.standard_normal(shape), 2.0)
    return (img + 0.05 * rng.standard_normal(img.shape)).astype(dtype)


# ---------------------------------------------------------------- cases
def _explicit(u):
    import pdediff

    s = pdediff.ExplicitHeatSolver(u.shape, u.dtype, dt=0.1)
    out = np.empty_like(u)
    return lambda: s.apply_operator(u, out, 0.1)


def _steps(n):
    def make(u):
        import pdediff

        s = pdediff.ExplicitHeatSolver(u.shape, u.dtype, dt=0.1)
        w = u.copy()
        return lambda: s.step(w, n)

    return make


def _adi(u):
    import pdediff

    s = pdediff.ImplicitHeatSolver(u.shape, u.dtype, dt=1.0)
    w = u.copy()
    s.step(w, 1)  # factorise outside the timing
    return lambda: s.step(w, 1)


def _spectral(u):
    import pdediff

    s = pdediff.SpectralHeatSolver(u.shape, u.dtype)
    return lambda: s.evolve(u, 1.0)


def _pm(**kw):
    def make(u):
        import pdediff

        call = dict(num_iter=N_ITER, kappa=KAPPA, check_finite=False, **kw)
        if "method" in call and "method" not in inspect.signature(pdediff.perona_malik).parameters:
            call["scheme"] = call.pop("method")  # the keyword's name before it was renamed
        return lambda: pdediff.perona_malik(u, **call)

    return make


def _rgb(u):
    import pdediff

    if u.ndim != 2:
        raise NotImplementedError("the 3-channel case is 2-D only")
    rgb = np.repeat(np.clip(u, 0, 255).astype(np.uint8)[..., None], 3, axis=-1).astype("float32")
    return lambda: pdediff.perona_malik(rgb, num_iter=N_ITER, kappa=KAPPA, sigma=0.0, channel_axis=-1,
                                        check_finite=False)


def _kappa(u):
    import pdediff

    v, h = u[None], (1.0,) * u.ndim

    def run():
        for _ in range(N_ITER):
            pdediff.estimate_kappa(v, h)

    return run


def _kappa_iteration(sigma):
    def make(u):
        import pdediff

        k = pdediff.estimate_kappa(u[None], (1.0,) * u.ndim)
        return lambda: pdediff.perona_malik(u, num_iter=N_ITER, kappa=k, sigma=sigma, check_finite=False)

    return make


def _kappa_auto(u):
    import pdediff

    return lambda: pdediff.perona_malik(u, num_iter=N_ITER, kappa="auto", check_finite=False)


#: ``name -> (group, label, steps per call, input, factory)``.  The names shared with
#: :mod:`pdediff.bench._registry` are the same cases (so a ``bench.json`` row compares with them);
#: ``pdediff_step_1/2/16`` add the in-place step counts around the registry's ``step(u, 8)``.
CASES = {
    "pdediff_explicit": ("heat-explicit", "pdediff explicit step", 1, heat_data, _explicit),
    "pdediff_step_1": ("heat-explicit", "pdediff step(u, 1)", 1, heat_data, _steps(1)),
    "pdediff_step_2": ("heat-explicit", "pdediff step(u, 2)", 2, heat_data, _steps(2)),
    "pdediff_explicit_block": ("heat-explicit", "pdediff step(u, 8)", 8, heat_data, _steps(8)),
    "pdediff_step_16": ("heat-explicit", "pdediff step(u, 16)", 16, heat_data, _steps(16)),
    "pdediff_adi": ("heat-adi", "pdediff ADI step", 1, heat_data, _adi),
    "pdediff_spectral": ("heat-spectral", "pdediff spectral solve", 1, heat_data, _spectral),
    "pdediff_exponential": ("pm", "pdediff PM exponential, sigma=0", N_ITER, pm_data, _pm(sigma=0.0)),
    "pdediff_rational": ("pm", "pdediff PM rational, sigma=0", N_ITER, pm_data,
                         _pm(sigma=0.0, conductance="rational")),
    "pdediff_exponential_sigma": ("pm", "pdediff PM exponential, default sigma", N_ITER, pm_data, _pm()),
    "pdediff_rational_sigma": ("pm", "pdediff PM rational, default sigma", N_ITER, pm_data,
                               _pm(conductance="rational")),
    "pdediff_aos": ("pm", "pdediff PM AOS, sigma=0", N_ITER, pm_data, _pm(sigma=0.0, method="aos")),
    "pdediff_rgb": ("pm", "pdediff PM 3-channel (float32)", N_ITER, pm_data, _rgb),
    "kappa_fused": ("pm-kappa", "pdediff estimate_kappa", N_ITER, kappa_data, _kappa),
    "iteration_sigma0": ("pm-kappa", "pdediff PM iteration, sigma=0", N_ITER, kappa_data, _kappa_iteration(0.0)),
    "iteration_sigma08": ("pm-kappa", "pdediff PM iteration, sigma=0.8", N_ITER, kappa_data,
                          _kappa_iteration(0.8)),
    "pdediff_kappa_auto": ("pm-kappa", "pdediff PM kappa='auto' (default sigma)", N_ITER, kappa_data,
                           _kappa_auto),
}

#: Cases that apply to 2-D images only (as the registry's OpenCV comparison); not planned at other sizes.
TWO_D_ONLY = frozenset({"pdediff_rgb"})


# ---------------------------------------------------------------- timing (as pdediff.bench._timing)
def time_case(fn, budget: dict) -> tuple[float, list[float], int]:
    """Median seconds per call of ``fn``, the samples (s per call) and the calls per sample."""
    fn()
    t0 = time.perf_counter()
    fn()
    first = max(time.perf_counter() - t0, 1e-7)
    number = int(min(budget["max_number"], max(1, math.ceil(budget["min_sample_s"] / first))))
    repeats = int(max(1, min(budget["repeats"], budget["max_case_s"] // (first * number))))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
    return float(np.median(samples)), samples, number


def _one(case: dict, budget: dict) -> dict:
    out = dict(case, status="ok", median_s=None, samples_s=[], number=0, error=None)
    if case["name"] not in CASES:
        return dict(out, status="unsupported", error=f"unknown case {case['name']!r}")
    _, _, _, data, make = CASES[case["name"]]
    try:
        if case.get("threads") is not None:
            import numba

            numba.set_num_threads(int(case["threads"]))
        fn = make(data(tuple(case["shape"]), np.dtype(case["dtype"])))
        out["median_s"], out["samples_s"], out["number"] = time_case(fn, budget)
    except _API_ERRORS as exc:
        out.update(status="unsupported", error=f"{type(exc).__name__}: {_first_line(exc)}")
    except Exception as exc:  # noqa: BLE001 - any failure of the code under test is reported, not raised
        out.update(status="failed", error=f"{type(exc).__name__}: {_first_line(exc)}")
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _versions() -> dict:
    import numba

    import pdediff

    return {"pdediff": getattr(pdediff, "__version__", None), "numpy": np.__version__, "numba": numba.__version__,
            "python": sys.version.split()[0]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="time pdediff cases for pdediff bench --compare (protocol 1)")
    ap.add_argument("--cases", required=True, help="the cases and budget (JSON)")
    ap.add_argument("--json", required=True, help="where the results go (JSON)")
    args = ap.parse_args(argv)
    with open(args.cases) as f:
        spec = json.load(f)
    if spec.get("protocol") != PROTOCOL:
        print(f"_worker: protocol {spec.get('protocol')!r} not understood (this is {PROTOCOL})", file=sys.stderr)
        return 2
    try:
        import pdediff
    except Exception:  # noqa: BLE001 - the code under test does not import: nothing can be timed
        traceback.print_exc()
        return 3
    results = [_one(c, spec["budget"]) for c in spec["cases"]]
    doc = {"protocol": PROTOCOL, "pdediff_file": os.path.abspath(pdediff.__file__), "versions": _versions(),
           "results": results}
    tmp = args.json + ".part"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
