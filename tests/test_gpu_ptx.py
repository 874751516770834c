"""Every GPU kernel compiled to PTX without a device (numba-cuda's NVVM), float32 kept float32, registers.

``numba.cuda.compile_ptx`` needs numba-cuda and its libNVVM (the ``dev`` extra
installs ``numba-cuda`` with ``nvidia-cuda-nvcc-cu12``, which ships libNVVM and
``ptxas``), but no GPU and no driver.  Each kernel is compiled for compute
capability 9.0 and 7.0 in float32 and float64 with the argument types the
backend launches it with (C-contiguous arrays, scalars of the data's type).
Not under the simulator: it replaces numba.cuda's compiler.
"""

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    pytest.skip("PTX needs numba.cuda's compiler, which the CUDA simulator replaces", allow_module_level=True)
pytest.importorskip("numba_cuda", reason="no numba-cuda (NVIDIA's CUDA target for Numba): pip install -e '.[dev]'")

from numba import cuda  # noqa: E402
from numba import types as nt  # noqa: E402

from pdediff.kernels.gpu import kernels as K  # noqa: E402
from pdediff.kernels.gpu.launch import BLOCK_THREADS  # noqa: E402

CCS = [(9, 0), (7, 0)]
DTYPES = {"float32": nt.float32, "float64": nt.float64}
ROWS = {"tri_factor_rows": 0, "tri_solve_rows": 1}
TENSOR = sorted(K.TENSOR_KERNELS[next(iter(K.TENSOR_KERNELS))])  # one kernel set per dtype
NAMES = sorted(K.KERNELS) + sorted(ROWS) + TENSOR


@functools.lru_cache(maxsize=1)
def _nvvm_missing():
    try:
        cuda.compile_ptx(lambda x: None, nt.void(nt.float32), cc=(9, 0))
    except Exception as exc:  # noqa: BLE001 - NvvmSupportError and friends
        return f"no usable libNVVM for numba-cuda ({type(exc).__name__}: {exc}); pip install 'numba-cuda[cu12]'"
    return None


def _signature(name, dt):
    A = {n: nt.Array(dt, n, "C") for n in (2, 3, 4)}
    i64, b = nt.int64, nt.boolean
    I16 = {n: nt.Array(nt.int16, n, "C") for n in (4, 5)}
    I32 = {n: nt.Array(nt.int32, n, "C") for n in (2, 3)}
    return nt.void(*{
        "heat3": (A[3],) * 5 + (dt,) * 5 + (i64,) * 3 + (b,),
        "pm3": (A[4],) * 3 + (dt,) * 5 + (i64,) + (dt,) * 3,
        "aos_coefficients": (A[4], A[3], A[3], A[3]) + (dt,) * 3 + (i64,) + (dt,) * 3,
        "tri_factor": (A[3],) * 5 + (dt,),
        "tri_solve": (A[3],) * 9 + (dt, b, b),
        "tri_factor_rows": (A[2],) * 5 + (dt, dt),
        "tri_solve_rows": (A[2],) * 9 + (dt, b, b, dt),
        "tensor_structure2": (A[3], dt, dt, i64, A[3]),
        "tensor_structure3": (A[4], dt, dt, dt, i64, A[4]),
        "tensor_links2": (A[3], i64, i64) + (dt,) * 6 + (i64, A[3], I16[4], I32[2]),
        "tensor_tensors3": (A[4], i64, i64) + (dt,) * 7 + (i64, A[4]),
        "tensor_selling3": (A[4], I16[5], I32[3]),
        "tensor_apply2": (A[3], A[3], I16[4], i64, i64, i64, dt, A[3], A[2], b),
        "tensor_apply3": (A[4], A[4], I16[5], i64, i64, i64, i64, dt, A[4], A[3], b),
    }[name])


def _pyfunc(name, dtype):
    import numpy as np

    if name in ROWS:
        return K.ROW_KERNELS[np.dtype(dtype)][ROWS[name]].py_func
    if name in TENSOR:
        return K.TENSOR_KERNELS[np.dtype(dtype)][name].py_func
    return K.KERNELS[name]


@functools.cache
def _ptx(name, dtype, cc):
    reason = _nvvm_missing()
    if reason:
        pytest.skip(reason)
    ptx, _ = cuda.compile_ptx(_pyfunc(name, dtype), _signature(name, DTYPES[dtype]), cc=cc)
    return ptx


def _f64_lines(ptx):
    """PTX lines touching float64: instructions, registers, parameters, conversions."""
    return [line.strip() for line in ptx.splitlines() if re.search(r"\.f64\b|%fd\d", line)]


@pytest.mark.parametrize("cc", CCS, ids=lambda c: f"sm_{c[0]}{c[1]}")
@pytest.mark.parametrize("name", NAMES)
def test_float32_kernels_compute_in_float32(name, cc):
    ptx = _ptx(name, "float32", cc)
    assert f".target sm_{cc[0]}{cc[1]}" in ptx
    bad = _f64_lines(ptx)
    assert not bad, f"{name}: {len(bad)} float64 lines in float32 PTX, e.g. {bad[:5]}"


@pytest.mark.parametrize("name", NAMES)
def test_float64_kernels_compile(name):
    """The same check sees float64 where there is some (so the float32 test can fail)."""
    assert _f64_lines(_ptx(name, "float64", (9, 0)))


def _ptxas():
    exe = shutil.which("ptxas")
    if exe:
        return exe
    try:
        import nvidia.cuda_nvcc  # nvidia-cuda-nvcc-cu12 (the dev extra; numba-cuda[cu12] brings it too)
    except ImportError:
        return None
    cand = Path(next(iter(nvidia.cuda_nvcc.__path__))) / "bin" / "ptxas"
    return str(cand) if cand.exists() else None


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("name", NAMES)
def test_registers_fit_the_block_with_headroom(name, dtype, tmp_path):
    """``ptxas -v`` register count: at most half of what a 256-thread block may use per thread (255)."""
    exe = _ptxas()
    if exe is None:
        pytest.skip("no ptxas (on PATH or from the nvidia-cuda-nvcc-cu12 wheel)")
    src = tmp_path / f"{name}.ptx"
    src.write_text(_ptx(name, dtype, (9, 0)))
    proc = subprocess.run([exe, "-arch=sm_90", "-v", "-o", os.devnull, str(src)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    regs = [int(m) for m in re.findall(r"Used (\d+) registers", proc.stderr)]
    assert regs, proc.stderr[-2000:]
    assert max(regs) * BLOCK_THREADS <= 65536 // 2, f"{name} {dtype}: {max(regs)} registers per thread"
    spills = [int(m) for m in re.findall(r"(\d+) bytes spill stores", proc.stderr)]
    assert not any(spills), proc.stderr[-2000:]
