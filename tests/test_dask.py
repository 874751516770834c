"""The Dask path (pdediff.dask): lazy Dask arrays in and out, equal to the in-memory results.

Every case compares against the in-memory solver on the same data (itself tested against SciPy/NumPy
references elsewhere); layouts cover regular, uneven and single-chunk axes, chunks thinner than the halo
and periodic wrap-around across chunk edges.  Chunks are NumPy arrays: CuPy chunks take the GPU kernels
through the same backend dispatch and cannot be run here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

import pdediff
from pdediff.dask._heat import solve_heat_dask
from pdediff.dask._pm import estimate_kappa_dask, perona_malik_dask


@pytest.fixture(autouse=True)
def _synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


SHAPES = {1: (23,), 2: (14, 17), 3: (7, 9, 8)}
LAYOUTS = {  # per dimension: regular, uneven (incl. a 1-cell chunk), one chunk on an axis
    1: {"regular": (6,), "uneven": ((5, 1, 9, 8),), "single": (23,)},
    2: {"regular": (5, 6), "uneven": ((3, 8, 3), (1, 7, 9)), "single": (14, (6, 11))},
    3: {"regular": (3, 4, 4), "uneven": ((2, 5), (4, 1, 4), (3, 5)), "single": ((7,), (4, 5), (8,))},
}


def _rel(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / max(np.abs(np.asarray(b)).max(), 1e-300))


def _data(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).random(shape).astype(dtype)


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("layout", ["regular", "uneven", "single"])
@pytest.mark.parametrize("boundary", ["neumann", "dirichlet", "periodic"])
@pytest.mark.parametrize("method", ["explicit", "implicit", "spectral"])
def test_heat_equals_in_memory(method, boundary, layout, ndim):
    x = _data(SHAPES[ndim])
    d = da.from_array(x, chunks=LAYOUTS[ndim][layout])
    kw = {"method": method, "boundary": boundary, "spacing": (0.9, 1.1, 1.0)[:ndim]}
    out = pdediff.solve_heat(d, 2.5, **kw)
    assert isinstance(out, da.Array) and out.chunks == d.chunks and out.dtype == np.float64
    assert _rel(out.compute(), pdediff.solve_heat(x, 2.5, **kw)) <= 1e-12


@pytest.mark.parametrize("method", ["explicit", "implicit", "spectral"])
def test_heat_float32_to_rounding(method):
    x = _data((16, 18), np.float32)
    d = da.from_array(x, chunks=(5, 7))
    out = pdediff.solve_heat(d, 2.0, method=method, boundary="periodic")
    assert out.dtype == np.float32
    assert _rel(out.compute(), pdediff.solve_heat(x, 2.0, method=method, boundary="periodic")) <= 8 * 2.0**-24


@pytest.mark.parametrize("k", [1, 2, 5])
def test_heat_several_steps_per_exchange_and_periodic_wrap(k):
    # a bump on the chunk edge at the array's end: its heat must cross to chunk 0 through the wrap-around
    x = np.zeros((24, 20))
    x[22:, 18:] = 1.0
    d = da.from_array(x, chunks=(6, 5))
    ref = pdediff.solve_heat(x, 3.0, method="explicit", boundary="periodic")
    out = solve_heat_dask(d, 3.0, method="explicit", diffusivity=1.0, spacing=1.0, boundary="periodic", dt=None,
                          scheme="crank-nicolson", spectrum="continuous", check_finite=True, max_steps=None,
                          steps_per_exchange_=k)
    res = out.compute()
    assert res[0, 0] > 1e-3  # the wrap reached the opposite corner
    assert _rel(res, ref) <= 1e-12


def test_heat_halo_wider_than_chunks():
    x = _data((30,))
    d = da.from_array(x, chunks=(2,))
    out = solve_heat_dask(d, 4.0, method="explicit", diffusivity=1.0, spacing=1.0, boundary="neumann", dt=None,
                          scheme="crank-nicolson", spectrum="continuous", check_finite=True, max_steps=None,
                          steps_per_exchange_=6)  # halo 6 > chunk 2: merged, then the caller's chunks restored
    assert out.chunks == d.chunks
    assert _rel(out.compute(), pdediff.solve_heat(x, 4.0, method="explicit")) <= 1e-12


@pytest.mark.parametrize("method", ["explicit", "implicit"])
def test_heat_variable_diffusivity_and_snapshots(method):
    x = _data((12, 15))
    D = 0.5 + _data((12, 15), seed=1)
    d = da.from_array(x, chunks=(5, 4))
    times = [0.0, 1.0, 2.5]
    out = pdediff.solve_heat(d, times, method=method, diffusivity=D, boundary="dirichlet")
    assert out.shape == (3, 12, 15)
    assert _rel(out.compute(), pdediff.solve_heat(x, times, method=method, diffusivity=D, boundary="dirichlet")) \
        <= 1e-12


PM_LAYOUTS = {1: (9,), 2: (7, (5, 8, 10, 10)), 3: (5, 4, (11,))}
PM_SHAPES = {1: (40,), 2: (30, 33), 3: (12, 10, 11)}


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("sigma", [0.0, None, 6.0])  # none, Catté convolution (halo), wide Catté (spectral)
@pytest.mark.parametrize("method", ["explicit", "aos"])
def test_perona_malik_equals_in_memory(method, sigma, ndim):
    x = 100 * _data(PM_SHAPES[ndim])
    d = da.from_array(x, chunks=PM_LAYOUTS[ndim])
    ref, ri = pdediff.perona_malik(x, method=method, sigma=sigma, num_iter=4, return_info=True)
    out, oi = pdediff.perona_malik(d, method=method, sigma=sigma, num_iter=4, return_info=True)
    assert isinstance(out, da.Array) and out.chunks == d.chunks
    assert oi.kappa == pytest.approx(ri.kappa, rel=1e-6)  # the global robust statistic, not a per-chunk one
    assert _rel(out.compute(), ref) <= 1e-12


@pytest.mark.parametrize("k", [1, 3])
def test_perona_malik_steps_per_exchange_and_thin_chunks(k):
    x = 10 * _data((26, 21))
    d = da.from_array(x, chunks=(3, 2))  # thinner than the halo k * (1 + R): merged, then restored
    ref = pdediff.perona_malik(x, num_iter=5, kappa=2.0, sigma=1.5)
    out = perona_malik_dask(d, num_iter=5, kappa=2.0, conductance="exponential", dt=None, sigma=1.5,
                            method="explicit", spacing=1.0, channel_axis=None, check_finite=True, max_steps=None,
                            return_info=False, steps_per_exchange_=k)
    assert out.chunks == d.chunks
    assert _rel(out.compute(), ref) <= 1e-12


def test_perona_malik_float32_colour_callable_and_spacing():
    x = (255 * _data((20, 22, 3))).astype(np.float32)
    d = da.from_array(x, chunks=(6, 9, 3))

    def g(s, kappa):
        return 1.0 / (1.0 + (s / kappa) ** 2)

    for method in ("explicit", "aos"):
        kw = {"method": method, "channel_axis": -1, "spacing": (1.0, 0.7), "conductance": g, "num_iter": 3}
        ref = pdediff.perona_malik(x, **kw)
        out = pdediff.perona_malik(d, **kw)
        assert out.dtype == np.float32 and out.chunks == d.chunks
        assert _rel(out.compute(), ref) <= 8 * 2.0**-24


def test_kappa_auto_global_not_per_chunk():
    # left half smooth, right half noisy: a per-chunk statistic would differ wildly between the halves
    rng = np.random.default_rng(3)
    x = np.zeros((32, 32))
    x[:, 16:] = rng.normal(0, 5, (32, 16))
    v = x[None]
    ref = pdediff.anisotropic.kappa.estimate_kappa(v, (1.0, 1.0))
    got = pdediff.anisotropic.kappa.estimate_kappa(da.from_array(v, chunks=(1, 8, 8)), (1.0, 1.0))
    assert got == pytest.approx(ref, rel=1e-6)
    assert estimate_kappa_dask(da.from_array(np.ones((1, 9, 9)), chunks=(1, 4, 4)), (1.0, 1.0)) == \
        pdediff.anisotropic.kappa.estimate_kappa(np.ones((1, 9, 9)), (1.0, 1.0))  # MAD 0: the fallback


def test_lazy_until_computed():
    calls = []

    def source(block):
        calls.append(block.size)
        return block

    d = da.from_array(_data((16, 16)), chunks=8).map_blocks(source, meta=np.empty((0, 0)))
    out = pdediff.solve_heat(d, 1.0, method="explicit")
    out2 = pdediff.perona_malik(d, kappa=1.0, method="aos", num_iter=2)
    out3 = pdediff.solve_heat(d, 1.0, method="spectral")
    assert calls == []
    out.compute(), out2.compute(), out3.compute()
    assert calls


def test_refusals():
    with pytest.raises(TypeError, match="u0"):
        pdediff.solve_heat(da.zeros((4, 4), dtype=bool, chunks=2), 1.0)
    with pytest.raises(ValueError, match="dimensions"):
        pdediff.solve_heat(da.zeros((2, 2, 2, 2), chunks=1), 1.0)
    with pytest.raises(TypeError, match="Dask diffusivity"):
        pdediff.solve_heat(da.zeros((4, 4), chunks=2), 1.0, method="explicit", diffusivity=da.ones((4, 4)))
    with pytest.raises(ValueError, match="spectral"):
        pdediff.solve_heat(da.zeros((4, 4), chunks=2), 1.0, diffusivity=np.ones((4, 4)))
    with pytest.raises(ValueError, match="method must be one of"):
        pdediff.perona_malik(da.zeros((4, 4), chunks=2), method="adi")
    bad = np.zeros((8, 8))
    bad[5, 5] = np.nan
    lazy = pdediff.solve_heat(da.from_array(bad, chunks=4), 1.0)  # refused when the chunk is computed
    with pytest.raises(ValueError, match="NaN"):
        lazy.compute()
    with pytest.raises(ValueError, match="NaN"):
        pdediff.perona_malik(da.from_array(bad, chunks=4)).compute()


def test_without_dask_import_error_names_extra(monkeypatch):
    d = da.zeros((4, 4), chunks=2)
    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.setitem(sys.modules, "dask.array", None)
    with pytest.raises(ImportError, match=r"pdediff\[dask\]"):
        pdediff.solve_heat(d, 1.0)
    with pytest.raises(ImportError, match=r"pdediff\[dask\]"):
        pdediff.perona_malik(d)


def test_import_pdediff_without_dask():
    code = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in ('dask', 'distributed', 'zarr'):
                    raise ImportError('blocked: ' + name)
        sys.meta_path.insert(0, Block())
        import numpy as np, pdediff
        assert 'dask' not in sys.modules
        print(round(float(pdediff.solve_heat(np.ones(8), 1.0).sum()), 9))
    """)
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "8.0"


def test_distributed_local_cluster_two_processes():
    distributed = pytest.importorskip("distributed")
    x = _data((24, 20))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  worker_dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        d = da.from_array(x, chunks=(6, 10))
        heat = pdediff.solve_heat(d, 2.0, method="explicit", boundary="periodic").compute()
        pm, info = pdediff.perona_malik(d * 50, num_iter=2, return_info=True)  # kappa passes on the cluster too
        pm = pm.compute()
    assert _rel(heat, pdediff.solve_heat(x, 2.0, method="explicit", boundary="periodic")) <= 1e-12
    ref, ri = pdediff.perona_malik(x * 50, num_iter=2, return_info=True)
    assert info.kappa == pytest.approx(ri.kappa, rel=1e-6)
    assert _rel(pm, ref) <= 1e-12


# ----------------------------------------------------------------------------- I/O and the command line
zarr = pytest.importorskip("zarr")


def test_zarr_round_trip_keeps_spacing_and_channels(tmp_path):
    from pdediff.io import open_chunked, read_scan, write_chunked, write_scan

    x = _data((6, 7, 3), np.float32)
    write_scan(tmp_path / "a.zarr", x, spacing=(2.0, 0.5), channel_axis=-1)
    s = read_scan(tmp_path / "a.zarr")
    assert s.format == "zarr" and s.spacing == (2.0, 0.5) and s.channel_axis == -1
    np.testing.assert_array_equal(s.data, x)
    lazy, scan = open_chunked(tmp_path / "a.zarr", 4)
    assert lazy.chunks[0] == (4, 2) and scan.spacing == (2.0, 0.5)
    write_chunked(tmp_path / "b.zarr", lazy * 2, like=scan, channel_axis=-1)
    np.testing.assert_array_equal(read_scan(tmp_path / "b.zarr").data, 2 * x)
    assert sorted(os.listdir(tmp_path)) == ["a.zarr", "b.zarr"]  # no temporary left behind
    x2 = np.zeros((3, 3), np.float32)
    write_scan(tmp_path / "a.zarr", x2)  # a previous store is replaced as a whole
    np.testing.assert_array_equal(read_scan(tmp_path / "a.zarr").data, x2)
    (tmp_path / "other.zarr").mkdir()  # a folder of something else is never replaced
    (tmp_path / "other.zarr" / "keep.txt").write_text("x")
    with pytest.raises(OSError, match="not a Zarr store"):
        write_chunked(tmp_path / "other.zarr", lazy)
    with pytest.raises(OSError, match="not a Zarr store"):
        write_scan(tmp_path / "other.zarr", x)
    assert (tmp_path / "other.zarr" / "keep.txt").read_text() == "x"


def test_nifti_proxy_and_streamed_nifti(tmp_path):
    from pdediff.io import ScanIOError, open_chunked, read_scan, write_chunked, write_scan

    x = (1000 * _data((9, 8, 7))).astype(np.float32)
    write_scan(tmp_path / "s.nii", x, spacing=(1.0, 2.0, 3.0), stored_dtype=np.int16)  # scaled on disk
    full = read_scan(tmp_path / "s.nii")
    lazy, scan = open_chunked(tmp_path / "s.nii", 4)
    assert scan.scaled and scan.spacing == full.spacing
    np.testing.assert_array_equal(lazy.compute(), full.data)
    write_chunked(tmp_path / "o.nii", lazy.astype(np.float32), like=scan)
    back = read_scan(tmp_path / "o.nii")
    np.testing.assert_array_equal(back.data, full.data.astype(np.float32))
    np.testing.assert_allclose(back.meta["affine"], full.meta["affine"])
    write_scan(tmp_path / "c.nii.gz", x)
    with pytest.raises(ScanIOError, match="decompress"):
        open_chunked(tmp_path / "c.nii.gz", 4)
    with pytest.raises(ScanIOError, match="chunked reading supports"):
        open_chunked(tmp_path / "s.npz", 4)


def _cli(*args):
    from pdediff.cli import main

    return main([str(a) for a in args])


def test_cli_chunks_equals_in_memory(tmp_path, capsys, monkeypatch):
    import sys

    from pdediff.io import read_scan, write_scan

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # tqdm shows its bars on a terminal only

    x = (1000 * _data((30, 26, 20))).astype(np.int16)
    write_scan(tmp_path / "scan.nii", x, spacing=(1.0, 1.0, 2.0))
    np.save(tmp_path / "scan.npy", x.astype(np.float32))
    assert _cli("denoise", tmp_path / "scan.nii", "-o", tmp_path / "ref.nii", "--quiet") == 0
    assert _cli("denoise", tmp_path / "scan.nii", "-o", tmp_path / "out.zarr", "--chunks", 12) == 0
    assert "Perona–Malik -> out.zarr" in capsys.readouterr().err  # the tqdm bar over the chunks
    ref = read_scan(tmp_path / "ref.nii")
    out = read_scan(tmp_path / "out.zarr")
    assert out.spacing == ref.spacing and out.data.dtype == np.float32
    np.testing.assert_array_equal(out.data, ref.data)
    assert _cli("denoise", tmp_path / "scan.npy", "-o", tmp_path / "out.nii", "--chunks", 10, "--quiet",
                "--spacing", 1, 1, 2) == 0
    assert _cli("denoise", tmp_path / "scan.npy", "-o", tmp_path / "ref32.npy", "--quiet", "--spacing", 1, 1, 2) == 0
    np.testing.assert_array_equal(read_scan(tmp_path / "out.nii").data, np.load(tmp_path / "ref32.npy"))
    # replacing a previous store needs --force; never INPUT; other formats and integer types refused
    assert _cli("denoise", tmp_path / "scan.nii", "-o", tmp_path / "out.zarr", "--chunks", 12, "--quiet") == 2
    assert _cli("denoise", tmp_path / "scan.nii", "-o", tmp_path / "out.zarr", "--chunks", 12, "--quiet",
                "--force") == 0
    assert _cli("denoise", tmp_path / "out.zarr", "-o", tmp_path / "out.zarr", "--chunks", 12, "--force") == 2
    assert _cli("denoise", tmp_path / "scan.nii", "-o", tmp_path / "x.png", "--chunks", 12) == 2
    assert _cli("denoise", tmp_path / "scan.nii", "-o", tmp_path / "y.zarr", "--chunks", 12, "--dtype",
                "uint16") == 2
    err = capsys.readouterr().err
    assert "exists" in err and "INPUT" in err and ".zarr or uncompressed .nii" in err and "stores floats" in err
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temporary left behind


@pytest.mark.parametrize("case", ["near-max-f32", "constant", "constant-5", "binary"])
def test_auto_kappa_equals_in_memory_at_any_scale(case):
    """The automatic kappa is measured on the image scaled by its global power of two, as in memory: equal
    values at 3e38 float32 (no inf - inf in the gradients) and for constant images (the fallback's units)."""
    import dask.array as da

    import pdediff

    rng = np.random.default_rng(0)
    x = {"near-max-f32": rng.random((40, 40)).astype(np.float32) * np.float32(3e38),
         "constant": np.full((40, 40), 1.0, np.float32), "constant-5": np.full((40, 40), 5.0),
         "binary": (rng.random((30, 32)) > 0.5).astype(np.float64)}[case]
    ref, info = pdediff.perona_malik(x, return_info=True)
    out, dinfo = pdediff.perona_malik(da.from_array(x, chunks=10), return_info=True)
    assert dinfo.kappa == info.kappa
    np.testing.assert_array_equal(out.compute(), ref)
