"""The GPU backend's setup errors, streams and argument wrapping, with CuPy and numba.cuda mocked: each
failure a user can meet on a real machine gives one clear error naming the fix (no device needed)."""

import sys
import types

import numpy as np
import pytest

from pdediff.kernels.gpu import backend as B


class _OOM(MemoryError):
    """Stands in for cupy.cuda.memory.OutOfMemoryError (a MemoryError subclass in CuPy too)."""


def _fake_cupy(stream_ptr=0, oom_bytes=None):
    cupy = types.ModuleType("cupy")
    stream = types.SimpleNamespace(ptr=stream_ptr, synchronize=lambda: None)
    runtime = types.SimpleNamespace(memGetInfo=lambda: (2 * 2**30, 80 * 2**30))
    cupy.cuda = types.SimpleNamespace(get_current_stream=lambda: stream, memory=types.SimpleNamespace(
        OutOfMemoryError=_OOM), runtime=runtime)

    def empty(shape, dtype=np.float64):
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if oom_bytes is not None and n >= oom_bytes:
            raise _OOM(f"Out of memory allocating {n:,} bytes (allocated so far: 0 bytes).")
        return np.zeros(shape, dtype)

    cupy.empty = empty
    cupy.zeros = empty
    cupy.float32 = np.float32
    return cupy


class _FakeCuda:
    """Records what the backend asks of numba.cuda."""

    def __init__(self, available=True, launch_error=None):
        self.available, self.launch_error, self.calls = available, launch_error, []

    def is_available(self):
        return self.available

    def legacy_default_stream(self):
        self.calls.append("legacy")
        return "legacy-stream"

    def per_thread_default_stream(self):
        self.calls.append("ptds")
        return "ptds-stream"

    def external_stream(self, ptr):
        self.calls.append(("external", ptr))
        return f"stream-{ptr}"

    def from_cuda_array_interface(self, desc, owner=None, sync=True):
        self.calls.append(("wrap", sync))
        return owner

    def jit(self, fn):
        fake = self

        class Kernel:
            def __getitem__(self, config):
                fake.calls.append(("launch", config))

                def run(*args):
                    if fake.launch_error is not None:
                        raise fake.launch_error
                    fn(*args)

                return run

        return Kernel()


def _backend(cupy, cuda):
    be = object.__new__(B.GPUBackend)
    be.simulate, be._cupy, be.xp, be._cuda = False, cupy, B._GuardedXP(cupy), cuda
    return be


class _CAI:
    """An array with ``__cuda_array_interface__``, like a CuPy array."""

    __cuda_array_interface__ = {"shape": (1,), "typestr": "<f4", "data": (0, False), "version": 3}


@pytest.fixture
def fake_cupy_installed(monkeypatch):
    cupy = _fake_cupy()
    cupyx = types.ModuleType("cupyx")
    scipy_ = types.ModuleType("cupyx.scipy")
    for name, mod in [("cupy", cupy), ("cupyx", cupyx), ("cupyx.scipy", scipy_),
                      ("cupyx.scipy.fft", types.ModuleType("cupyx.scipy.fft")),
                      ("cupyx.scipy.ndimage", types.ModuleType("cupyx.scipy.ndimage"))]:
        monkeypatch.setitem(sys.modules, name, mod)
    return cupy


def test_gpu_array_without_the_extra(fake_cupy_installed, monkeypatch):
    """CuPy present (the user has a CuPy array), numba-cuda absent: ImportError naming both extras."""
    monkeypatch.setattr(B, "_has_numba_cuda", lambda: False)
    with pytest.raises(ImportError, match=r"numba-cuda.*pdediff\[gpu-cu12\].*pdediff\[gpu-cu13\].*nvidia-smi"):
        B._require()


def test_no_cupy_names_cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy -> ImportError
    with pytest.raises(ImportError, match=r"need CuPy.*gpu-cu12"):
        B._require()


def test_extra_without_a_device(fake_cupy_installed, monkeypatch):
    import numba.cuda

    monkeypatch.setattr(B, "_has_numba_cuda", lambda: True)
    monkeypatch.setattr(numba.cuda, "is_available", lambda: False)
    with pytest.raises(B.GPUUnavailableError, match="no usable CUDA device") as info:
        B._require()
    assert isinstance(info.value, RuntimeError)


class NvvmSupportError(ImportError):
    """Named like numba.cuda.cudadrv.error.NvvmSupportError (an ImportError there too)."""


def test_nvvm_missing_at_first_use():
    """numba-cuda without its NVVM (plain `pip install numba-cuda`): the first-use kernel fails to compile."""
    be = _backend(_fake_cupy(), _FakeCuda(launch_error=NvvmSupportError("libNVVM cannot be found")))
    with pytest.raises(ImportError, match=r"NVVM is missing.*libNVVM cannot be found.*gpu-cu12.*gpu-cu13"):
        B._first_use_check(be)


def test_first_use_launch_failure_is_a_device_error():
    be = _backend(_fake_cupy(), _FakeCuda(launch_error=RuntimeError("CUDA_ERROR_NO_BINARY_FOR_GPU")))
    with pytest.raises(B.GPUUnavailableError, match="CUDA_ERROR_NO_BINARY_FOR_GPU.*gpu-cu12"):
        B._first_use_check(be)


def test_first_use_check_passes_on_a_working_setup():
    cuda = _FakeCuda()
    B._first_use_check(_backend(_fake_cupy(), cuda))
    assert ("launch", (1, 1, "legacy-stream")) in cuda.calls


def test_out_of_memory_names_the_size():
    xp = B._GuardedXP(_fake_cupy(oom_bytes=2**30))
    assert xp.empty((4, 4), dtype=np.float32).shape == (4, 4)
    with pytest.raises(B.GPUOutOfMemoryError, match=r"allocating 68,719,476,736 bytes.*2\.00 GiB free of 80\.00"):
        xp.empty((2**15, 2**16, 4), dtype=np.float64)
    assert issubclass(B.GPUOutOfMemoryError, MemoryError)


@pytest.mark.parametrize("ptr,expect", [(0, "legacy"), (1, "legacy"), (2, "ptds"), (0x7F00AB, ("external", 0x7F00AB))])
def test_kernels_launch_on_cupys_current_stream(ptr, expect):
    """CuPy's null stream is the legacy default stream: never passed as a raw 0 handle."""
    cuda = _FakeCuda()
    be = _backend(_fake_cupy(stream_ptr=ptr), cuda)
    be._stream()
    assert cuda.calls == [expect]


def test_arguments_are_wrapped_without_synchronising():
    cuda = _FakeCuda()
    be = _backend(_fake_cupy(stream_ptr=5), cuda)
    seen = []
    kernel = cuda.jit(lambda *a: seen.append(a))
    x = _CAI()
    be._launch(kernel, ((1, 1, 1), (32, 1, 1)), x, 1.5, x)
    assert cuda.calls.count(("wrap", False)) == 2 and ("wrap", True) not in cuda.calls
    assert ("launch", ((1, 1, 1), (32, 1, 1), "stream-5")) in cuda.calls
    assert seen == [(x, 1.5, x)]
