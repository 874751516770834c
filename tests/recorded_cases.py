"""Recorded results of the public solvers, for refactors that must not move a number (issue 19).

``python tests/recorded_cases.py`` writes ``tests/data/recorded_cases.npz`` from the
code as it is; ``tests/test_recorded_cases.py`` recomputes every case and compares.
Record only on purpose (a deliberate numerical change, stated in the commit).
"""
from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

PATH = Path(__file__).parent / "data" / "recorded_cases.npz"


def _field(shape, seed, dtype):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape).cumsum(axis=-1)  # smooth along x, rough across: every direction matters
    x += 5.0 * (np.indices(shape).sum(axis=0) % 7 > 3)  # edges for Perona–Malik
    return x.astype(dtype)


SHAPES = {1: (37,), 2: (19, 23), 3: (9, 8, 11)}


def cases():
    """Yield ``(name, thunk)``; each thunk returns the array to record."""
    import pdediff

    for d, shape in SHAPES.items():
        for dtype in ("float32", "float64"):
            u = _field(shape, d, dtype)
            for bc in ("neumann", "dirichlet", "periodic"):
                for method, extra in (("spectral", {}), ("explicit", {}), ("implicit", {}),
                                      ("implicit", {"scheme": "backward-euler"}),
                                      ("spectral", {"spectrum": "discrete"})):
                    tag = "-".join(f"{k}={v}" for k, v in extra.items())
                    name = f"heat/{d}d/{dtype}/{bc}/{method}/{tag}"
                    yield name, (lambda u=u, m=method, bc=bc, e=extra:
                                 pdediff.solve_heat(u, 2.5, method=m, boundary=bc, spacing=0.9, **e))
            sp = tuple(0.8 + 0.2 * i for i in range(d))
            yield f"heat/{d}d/{dtype}/spacing-diffusivity/implicit", (
                lambda u=u, sp=sp: pdediff.solve_heat(u, 1.0, method="implicit", spacing=sp, diffusivity=0.7))
            yield f"heat/{d}d/{dtype}/spacing/explicit", (
                lambda u=u, sp=sp: pdediff.solve_heat(u, 1.0, method="explicit", spacing=sp, dt=0.05))
            for method in ("explicit", "aos"):
                for cond in ("exponential", "rational", "tukey"):
                    for sigma in (0.0, 1.0):
                        name = f"pm/{d}d/{dtype}/{method}/{cond}/sigma={sigma}"
                        yield name, (lambda u=u, m=method, c=cond, s=sigma:
                                     pdediff.perona_malik(u, num_iter=6, method=m, conductance=c, sigma=s))
                yield f"pm/{d}d/{dtype}/{method}/kappa=3/spacing", (
                    lambda u=u, m=method, sp=sp: pdediff.perona_malik(u, num_iter=5, kappa=3.0, method=m,
                                                                       spacing=sp))
                yield f"pm/{d}d/{dtype}/{method}/defaults", (
                    lambda u=u, m=method: pdediff.perona_malik(u, method=m))
    rgb = _field((16, 18, 3), 7, "float32")
    yield "pm/2d/float32/colour", lambda: pdediff.perona_malik(rgb, num_iter=4, channel_axis=-1)
    u8 = (np.clip(_field((20, 21), 9, "float64") * 10 + 100, 0, 255)).astype(np.uint8)
    yield "pm/2d/uint8/defaults", lambda: pdediff.perona_malik(u8)
    for d, shape in ((2, (21, 24)), (3, (8, 9, 10))):
        img = _field(shape, 11 + d, "float64")
        mask = np.zeros(shape, bool)
        mask[(slice(2, 5),) * d] = True
        mask[(slice(None), ) * (d - 1) + (slice(6, 8),)] = True
        for method in ("harmonic", "biharmonic", "perona_malik"):
            if d == 3 and method == "biharmonic":
                continue
            for dtype in ("float32", "float64"):
                yield f"inpaint/{d}d/{dtype}/{method}", (
                    lambda img=img.astype(dtype), m=method, mask=mask: pdediff.inpaint(img, mask, method=m))


def record():
    out = {name: np.asarray(fn()) for name, fn in cases()}
    out["__machine__"] = np.array(platform.machine() + " " + _cpu_name())
    PATH.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(PATH, **out)
    print(f"{len(out) - 1} cases recorded in {PATH} ({PATH.stat().st_size} bytes)")


def _cpu_name() -> str:
    import numba

    return numba.config.CPU_NAME or __import__("llvmlite.binding", fromlist=["x"]).get_host_cpu_name()


if __name__ == "__main__":
    record()
