"""One explicit EED step against one explicit Perona–Malik step, 2048² float32, in one process (issue 24).

Usage::

    nice -n 19 python benchmarks/tensor_step_ratio.py [--size 2048] [--repeats 7] [--steps 5] [--kappa-factor F]

Run it also with ``NUMBA_NUM_THREADS=1``: on a shared, oversubscribed machine the threaded kernels
spin-wait for descheduled threads (Perona–Malik's driver then picks its serial build, the tensor
kernels do not), so the single-thread ratio is the one that compares the work.

The image is ``skimage.data.camera()`` resized to ``size²`` (grey values 0..255) with Gaussian noise
of standard deviation 25.5 (10 %), float32.  Both filters run with their defaults (``kappa="auto"``,
their own pre-smoothing, their default dt: Perona–Malik's stability limit, EED's 0.8 of it, so
that an EED step is one sub-step).  Per repeat, interleaved: a 1-step call and a
``1 + steps``-step call of each filter; the *call* time is the 1-step call (setup included: the
``kappa`` estimate, buffers), the *step* time ``(t(1 + steps) - t(1)) / steps`` (the marginal cost of
a step).  The machine is shared, so only ratios taken within one repeat mean anything: printed are
the median ratio and its range over the repeats (min..max), with the median times.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _image(size: int) -> np.ndarray:
    from skimage.data import camera
    from skimage.transform import resize

    img = resize(camera().astype(np.float64), (size, size), order=1, preserve_range=True)
    rng = np.random.default_rng(0)
    return (img + 25.5 * rng.standard_normal(img.shape)).astype(np.float32)


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv=None) -> dict:
    import pdediff

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--kappa-factor", type=float, default=None,
                    help="EED kappa as this multiple of its automatic value (default: kappa='auto')")
    args = ap.parse_args(argv)
    x = _image(args.size)
    k = args.steps
    kappa = "auto"
    if args.kappa_factor is not None:
        kappa = args.kappa_factor * pdediff.tensor_diffusion(x, num_iter=0, return_info=True)[1].kappa
    runs = {
        "pm": lambda n: pdediff.perona_malik(x, num_iter=n),
        "eed": lambda n: pdediff.tensor_diffusion(x, kind="eed", num_iter=n, kappa=kappa),
    }
    for f in runs.values():  # compile and warm up
        f(1)
        f(1 + k)
    t = {(name, n): [] for name in runs for n in (1, 1 + k)}
    for _ in range(args.repeats):
        for n in (1, 1 + k):
            for name, f in runs.items():
                t[name, n].append(_timed(lambda: f(n)))
    a = {key: np.asarray(v) for key, v in t.items()}
    call = {name: a[name, 1] for name in runs}
    step = {name: (a[name, 1 + k] - a[name, 1]) / k for name in runs}
    out = {}
    for what, d in (("call", call), ("step", step)):
        r = d["eed"] / d["pm"]
        out[what] = (float(np.median(r)), float(r.min()), float(r.max()))
        print(f"{what:>5}: PM {np.median(d['pm']) * 1e3:8.1f} ms   EED {np.median(d['eed']) * 1e3:8.1f} ms   "
              f"EED/PM median {out[what][0]:.2f}  (range {out[what][1]:.2f}..{out[what][2]:.2f}, "
              f"{args.repeats} repeats)")
    _, info = pdediff.tensor_diffusion(x, num_iter=1, kappa=kappa, return_info=True)
    print(f"EED kappa {info.kappa:.3g}, sigma {info.sigma:g}, max offset {info.max_offset}, "
          f"substeps {info.substeps}")
    return out


if __name__ == "__main__":
    main()
