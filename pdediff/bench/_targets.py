"""What the measurements are judged by: the within-run ratios (:data:`RATIOS`) and the performance targets
(:data:`TARGETS`).

Every target is a ratio against something measured in the same run, and says
which (:attr:`Target.source`): the copy *roofline* (the memory bandwidth that
bounds a one-pass kernel), a *peer* library, a *reference* (the bare transform
pair a spectral solve cannot beat), or one of *pdediff*'s own kernels (a
scheme against the cheaper one it must stay close to, a kernel under load
against its quiet serial time).  ``pdediff bench`` evaluates both lists; the
pytest-benchmark harness (``benchmarks/conftest.py``) prints the ratios.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._workload import BLOCK_STEPS


@dataclass(frozen=True)
class Ratio:
    """``(num time per step) / (den time per step)`` within ``group``; ``target`` with its direction.

    ``num`` and ``den`` name an implementation, or several joined by ``+`` (the sum of their times).
    """

    label: str
    group: str
    num: str
    den: str
    target: float | None = None
    higher_is_better: bool = True

    def meets(self, value: float) -> bool | None:
        """Whether ``value`` meets the target (``None`` without a target)."""
        if self.target is None:
            return None
        return value >= self.target if self.higher_is_better else value <= self.target


RATIOS: tuple[Ratio, ...] = (
    Ratio("copy / explicit step (roofline)", "heat-explicit", "copy", "pdediff_explicit", 0.7),
    Ratio("NumPy step / pdediff step", "heat-explicit", "numpy_step", "pdediff_explicit", 10),
    Ratio("ndimage.laplace step / pdediff step", "heat-explicit", "ndimage_step", "pdediff_explicit"),
    Ratio("py-pde step / pdediff step", "heat-explicit", "pypde_step", "pdediff_explicit", 20),
    Ratio(f"{BLOCK_STEPS} single steps / step(u, {BLOCK_STEPS})", "heat-explicit", "pdediff_explicit",
          "pdediff_explicit_block", 2),
    Ratio("ADI step / explicit step", "heat-adi", "pdediff_adi", "pdediff_explicit", 3, higher_is_better=False),
    Ratio("solve_banded ADI / pdediff ADI", "heat-adi", "scipy_banded_adi", "pdediff_adi"),
    Ratio("scipy CG step / pdediff ADI", "heat-adi", "scipy_cg", "pdediff_adi", 20),
    Ratio("scipy splu solve / pdediff ADI", "heat-adi", "scipy_splu", "pdediff_adi", 20),
    Ratio("spectral solve / transform pair", "heat-spectral", "pdediff_spectral", "fft_pair", 1.2,
          higher_is_better=False),
    Ratio("MedPy / pdediff (exponential)", "pm", "medpy", "pdediff_exponential", 5),
    Ratio("SimpleITK / pdediff (exponential)", "pm", "simpleitk", "pdediff_exponential", 30),
    Ratio("copy / pdediff rational (roofline)", "pm", "copy_n", "pdediff_rational", 0.5),
    Ratio("OpenCV 3-ch / pdediff 3-ch", "pm", "opencv_rgb", "pdediff_rgb", 1),
    Ratio("AOS step / explicit step", "pm", "pdediff_aos", "pdediff_exponential", 4, higher_is_better=False),
    Ratio("default sigma / sigma=0 (exponential)", "pm", "pdediff_exponential_sigma", "pdediff_exponential", 1.5,
          higher_is_better=False),
    Ratio("ndimage gaussian / default-sigma iteration", "pm", "ndimage_gaussian", "pdediff_exponential_sigma"),
    Ratio("skimage gaussian / default-sigma iteration", "pm", "skimage_gaussian", "pdediff_exponential_sigma"),
    Ratio("kappa estimate / iteration (sigma=0)", "pm-kappa", "kappa_fused", "iteration_sigma0", 2,
          higher_is_better=False),
    Ratio("kappa estimate / iteration (sigma=0.8)", "pm-kappa", "kappa_fused", "iteration_sigma08", 2,
          higher_is_better=False),
    Ratio("NumPy formula / fused kappa estimate", "pm-kappa", "kappa_numpy_formula", "kappa_fused"),
    Ratio("heat_blur / scipy dctn+idctn", "torch", "pdediff_heat_blur", "scipy_fft_pair_batch", 1.5,
          higher_is_better=False),
    Ratio("IHDM torch-fft DCT blur / heat_blur", "torch", "ihdm_torch_dct", "pdediff_heat_blur", 1.0),
    # pdediff's threads must not slow torch's training step (fair share of the cores) ...
    Ratio("training step: pdediff threads / pdediff serial", "torch-train", "torch_train_step",
          "torch_train_step_serial", 1.0, higher_is_better=False),
    # ... nor the two pools each other: the step against its parts timed alone ("a+b": a sum of impls)
    Ratio("training step / (degradation + torch part, alone)", "torch-train", "torch_train_step",
          "torch_train_degrade+torch_train_model", 1.1, higher_is_better=False),
)


@dataclass(frozen=True)
class Target:
    """One performance target, evaluated at every measured shape and dtype it applies to.

    ``kind``: ``"ratio"`` (``num / den`` per step, both from ``group`` on
    ``device``), ``"roofline"`` (``num``'s GB/s over the copy's), ``"cross"``
    (CPU ``num`` / GPU ``num``, per step) or ``"load"`` (the slowest pdediff
    kernel under load over its serial time on the quiet machine).
    ``source``: what the target is measured against, ``"<origin>: <what>"``
    with the origin one of ``roofline``, ``peer``, ``reference``, ``pdediff``.
    ``stated_shapes``: the sizes the target is set for (marked ``*`` in the
    report; ``bench.json`` calls them ``issue_size``); other sizes are reported too.
    """

    key: str
    label: str
    kind: str
    group: str
    num: str
    den: str | None
    threshold: float
    higher_is_better: bool
    source: str
    dtypes: tuple[str, ...] | None = None
    stated_shapes: tuple[tuple[int, ...], ...] = ()
    device: str = "cpu"
    needs: str = ""  # what a run must include to measure it

    def meets(self, value: float) -> bool:
        """Whether ``value`` meets the threshold in the target's direction."""
        return value >= self.threshold if self.higher_is_better else value <= self.threshold


_S2048, _S4096, _S1024, _C256 = (2048, 2048), (4096, 4096), (1024, 1024), (256,) * 3

TARGETS: tuple[Target, ...] = (
    Target("pm-default-sigma", "default-sigma PM iteration / sigma=0 iteration", "ratio", "pm",
           "pdediff_exponential_sigma", "pdediff_exponential", 1.5, False, "pdediff: its sigma=0 iteration",
           stated_shapes=(_S2048, _C256)),
    Target("adi", "ADI step / explicit step", "ratio", "heat-adi", "pdediff_adi", "pdediff_explicit", 3, False,
           "pdediff: its explicit step", stated_shapes=(_S1024, _S4096, _C256)),
    Target("aos", "AOS PM step / explicit PM step", "ratio", "pm", "pdediff_aos", "pdediff_exponential", 4, False,
           "pdediff: its explicit PM step", stated_shapes=(_S2048, _C256)),
    Target("temporal-blocking", f"throughput of step(u, {BLOCK_STEPS}) / {BLOCK_STEPS} single steps", "ratio",
           "heat-explicit", "pdediff_explicit", "pdediff_explicit_block", 2, True, "pdediff: its single steps",
           dtypes=("float32",), stated_shapes=(_S4096, _C256)),
    Target("pm-rational-roofline", "rational PM throughput / copy roofline", "roofline", "pm", "pdediff_rational",
           None, 0.5, True, "roofline: copy bandwidth", stated_shapes=(_S2048, _C256)),
    Target("pypde-f64", "py-pde step / pdediff explicit step (float64)", "ratio", "heat-explicit", "pypde_step",
           "pdediff_explicit", 20, True, "peer: py-pde", dtypes=("float64",),
           stated_shapes=(_S1024, _S4096, (128,) * 3, _C256), needs="--peers"),
    Target("simpleitk-f64", "SimpleITK / pdediff PM iteration (float64)", "ratio", "pm", "simpleitk",
           "pdediff_exponential", 30, True, "peer: SimpleITK", dtypes=("float64",),
           stated_shapes=((512, 512), _S2048, (128,) * 3, _C256), needs="--peers"),
    Target("load", "slowest kernel under load / its quiet serial time", "load", "", "", None, 1.3, False,
           "pdediff: its quiet serial time", needs="--load"),
    Target("gpu-explicit-roofline", "GPU explicit step / device copy bandwidth", "roofline", "heat-explicit",
           "pdediff_explicit", None, 0.7, True, "roofline: device copy bandwidth", stated_shapes=(_S4096, _C256),
           device="gpu", needs="a GPU"),
    Target("gpu-spectral", "GPU spectral solve / CuPy FFT pair", "ratio", "heat-spectral", "pdediff_spectral",
           "fft_pair", 1.2, False, "reference: CuPy DCT pair", stated_shapes=(_S4096, _C256), device="gpu",
           needs="a GPU"),
    Target("gpu-pm-vs-cpu", "CPU PM iteration / GPU PM iteration", "cross", "pm", "pdediff_exponential", None, 50,
           True, "pdediff: its CPU kernel", stated_shapes=(_S4096,), device="gpu", needs="a GPU"),
)


def target(key: str) -> Target:
    """The target called ``key`` (``KeyError`` if none)."""
    for t in TARGETS:
        if t.key == key:
            return t
    raise KeyError(key)
