"""What every forward process shares: :class:`ForwardProcess` (the abstract interface), :class:`StepOutput`,
the JSON config round trip behind :func:`load_process`, the config checks, and small helpers.

The timestep convention (one for all processes) is described in :mod:`pdediff.torch.processes`;
the processes' names are :data:`pdediff.catalogue.PROCESSES`.
"""

from __future__ import annotations

import abc
import inspect
import json
import os
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from ...catalogue import PROCESSES
from ...errors import ParameterError
from .._checks import integer as check_integer
from .._checks import real as check_real
from ..ops import dct, heat_blur, idct, laplacian_eigenvalues

__all__ = ["StepOutput", "ForwardProcess", "load_process", "CLEAN", "MAX_TRAIN_TIMESTEPS"]

#: The timestep "before 0": the clean image.  :meth:`ForwardProcess.previous_timestep`
#: returns it after the last step, and ``blur`` / ``degrade`` accept it.
CLEAN = -1

#: Largest ``num_train_timesteps`` a process takes (schedules are arrays of this length; diffusers uses 1000).
MAX_TRAIN_TIMESTEPS = 100_000


def _class_named(name: str) -> type | None:
    """The catalogued process class called ``name`` (:data:`pdediff.catalogue.PROCESSES`), or None."""
    for entry in PROCESSES.values():
        if entry.cls.rpartition(":")[2] == name:
            return entry.load()
    return None


@dataclass
class StepOutput:
    """Result of :meth:`ForwardProcess.step`."""

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor


# ------------------------------------------------------------------------------ helpers
def _randn(shape, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(shape, generator=generator, dtype=like.dtype, device=like.device)


def _as_timesteps(timesteps: Any, n: int, lo: int, hi: int) -> torch.Tensor:
    """Integer timesteps as a ``(n,)`` long tensor (a scalar is broadcast), checked to lie in ``[lo, hi]``."""
    t = torch.as_tensor(timesteps)
    if t.is_floating_point() or t.dtype == torch.bool:
        if t.is_floating_point() and torch.all(t == t.round()):
            t = t.long()
        else:
            raise TypeError(f"timesteps must be integers; got dtype {t.dtype}")
    t = t.long().reshape(-1)
    if t.numel() == 1 and n != 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ValueError(f"timesteps must be a scalar or have one entry per sample ({n}); got {t.numel()}")
    if torch.any(t < lo) or torch.any(t > hi):
        raise ValueError(f"timesteps must lie in [{lo}, {hi}]; got min {int(t.min())}, max {int(t.max())}")
    return t


def _check_sample(x: Any, name: str = "x0") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be float32 or float64; got {x.dtype}")
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W); got {tuple(x.shape)}")


def _bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.to(device=x.device, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))


def _log_sigmas(smin: float, smax: float, K: int) -> np.ndarray:
    """Blur widths log-spaced from ``smin`` (timestep 0) to ``smax`` (timestep ``K - 1``), both checked."""
    smin = check_real(smin, "sigma_blur_min", lo=0.0, lo_open=True)
    smax = check_real(smax, "sigma_blur_max", lo=0.0, lo_open=True)
    if smin > smax:
        raise ParameterError(f"need 0 < {{sigma_blur_min}} <= {{sigma_blur_max}}; got {smin}, {smax}",
                             param="sigma_blur_min")
    return np.exp(np.linspace(np.log(smin), np.log(smax), K))


def heat_levels(x0: torch.Tensor, blur_times: np.ndarray, timesteps: Any) -> torch.Tensor:
    """``F(blur_times[t]) x0`` per sample: the heat blur of a process's schedule.

    ``timesteps`` in ``[-1, K - 1]`` with ``K = len(blur_times)``; ``-1``
    (:data:`CLEAN`) is the clean image (diffusion time 0).  Shared by
    :meth:`HeatDissipation.blur <pdediff.torch.HeatDissipation.blur>` and the
    heat operator of :meth:`ColdDiffusion.degrade <pdediff.torch.ColdDiffusion.degrade>`.
    """
    k = _as_timesteps(timesteps, x0.shape[0], CLEAN, len(blur_times) - 1)
    times = np.concatenate([[0.0], np.asarray(blur_times, dtype=np.float64)])[k.cpu().numpy() + 1]
    # per training batch: a finiteness check would cost a pass (and a GPU sync)
    return heat_blur(x0, torch.from_numpy(times), check_finite=False)


def _transition_levels(process: ForwardProcess, sample: Any, timestep: Any, next_timestep: Any) -> tuple[int, int]:
    """Check the arguments of ``forward_transition``: a sample batch and integers ``-1 <= t < s <= K-1``."""
    _check_sample(sample, "sample")
    levels = []
    for name, v in (("timestep", timestep), ("next_timestep", next_timestep)):
        if isinstance(v, torch.Tensor) and v.numel() == 1:
            v = v.item()
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an integer in [-1, {process.t_max}]; got {v!r}")
        if not CLEAN <= int(v) <= process.t_max:
            raise ValueError(f"{name} must be in [-1, {process.t_max}] (-1: the clean image); got {int(v)}")
        levels.append(int(v))
    t, s = levels
    if s <= t:
        raise ValueError(f"next_timestep must be larger than timestep (a forward transition degrades); got "
                         f"timestep={t}, next_timestep={s}")
    return t, s


def heat_transition(sample: torch.Tensor, blur_times: np.ndarray, timestep: int, next_timestep: int,
                    noise_std: tuple[float, float], generator: torch.Generator | None) -> torch.Tensor:
    r"""``x_s = F(\tau_s - \tau_t) x_t + \eta`` for states ``x_t = F(\tau_t) x_0 + \sigma_t \varepsilon``.

    The heat semigroup gives :math:`F(\tau_s-\tau_t)F(\tau_t) = F(\tau_s)`, so the
    deterministic part lands on level ``s`` exactly.  The blur also colours the
    noise already in ``x_t`` (covariance :math:`\sigma_t^2 F(2\Delta)`,
    :math:`\Delta = \tau_s - \tau_t`); :math:`\eta` completes it to white noise
    of standard deviation :math:`\sigma_s`: in the orthonormal DCT basis of the
    Neumann heat flow, coefficient ``k`` gets independent Gaussian noise of
    variance :math:`\sigma_s^2 - \sigma_t^2 e^{-2\lambda_k\Delta}` (≥ 0 when
    :math:`\sigma_s \ge \sigma_t`).  ``noise_std`` is
    :math:`(\sigma_t, \sigma_s)`; timestep ``-1`` has ``tau = 0``.
    """
    times = np.concatenate([[0.0], np.asarray(blur_times, dtype=np.float64)])
    delta = float(times[next_timestep + 1] - times[timestep + 1])
    out = heat_blur(sample, delta, check_finite=False)
    s_t, s_s = (float(v) for v in noise_std)
    if s_s > 0:
        lam = torch.from_numpy(laplacian_eigenvalues(tuple(sample.shape[-2:]))).to(sample.device)
        var = (s_s**2 - s_t**2 * torch.exp(-2.0 * lam * delta)).clamp_min(0.0)
        white = _randn(sample.shape, sample, generator)
        out = out + idct(var.sqrt().to(sample.dtype) * dct(white))
    return out


def _fmt_schedule(ts: list[int]) -> str:
    if len(ts) <= 8:
        return str(ts)
    head = ", ".join(map(str, ts[:3]))
    tail = ", ".join(map(str, ts[-3:]))
    return f"[{head}, ..., {tail}] ({len(ts)} timesteps)"


def train_timesteps(value: Any) -> int:
    """``num_train_timesteps`` checked: an integer in ``[1, MAX_TRAIN_TIMESTEPS]``."""
    return check_integer(value, "num_train_timesteps", 1, MAX_TRAIN_TIMESTEPS)


# ------------------------------------------------------------------------------ the contract
#: The Parameters/Returns/Raises sections of the abstract methods, written once: a subclass's
#: override documents only its maths (its summary) and gets these sections appended.
_SECTIONS = {
    "add_noise": """
        Parameters
        ----------
        x0 : Tensor, shape ``(N, C, H, W)``
            Clean images, float32 or float64.
        noise : Tensor, shape of ``x0``
            Standard Gaussian noise (scaled by the process; a deterministic
            process with no training noise ignores it).
        timesteps : int or Tensor of int
            In ``[0, K-1]``: one for all samples or one per sample.

        Returns
        -------
        Tensor
            ``x_t``, shaped and typed like ``x0``.

        Raises
        ------
        TypeError, ValueError
            ``x0`` not a float ``(N, C, H, W)`` tensor; timesteps not integers
            or outside ``[0, K-1]``.
        """,
    "training_target": """
        Parameters
        ----------
        x0, noise, timesteps
            As for :meth:`add_noise` (the same draws give the matching ``x_t``).

        Returns
        -------
        Tensor
            What the model is trained to output for ``add_noise(x0, noise, timesteps)``
            (mean squared error), shaped like ``x0``.
        """,
    "step": """
        Parameters
        ----------
        model_output : Tensor, shape of ``sample``
            The model's output for ``sample`` at ``timestep`` (what
            :meth:`training_target` defines).
        timestep : int
            A timestep of the current schedule (:attr:`timesteps`).
        sample : Tensor, shape ``(N, C, H, W)``
            ``x_t``.
        generator : torch.Generator, optional
            Draws the step's noise.

        Returns
        -------
        StepOutput
            ``prev_sample`` (the sample at the next scheduled timestep, or the
            clean estimate after the last step) and ``pred_original_sample``.

        Raises
        ------
        ValueError
            ``timestep`` not in the current schedule (:meth:`set_timesteps`).
        """,
    "sample_prior": """
        Parameters
        ----------
        n_or_data : int or Tensor
            How many prior samples, or a batch ``(N, C, H, W)`` whose shape
            (and, for the data-built priors, content) they take.
        generator : torch.Generator, optional
            Draws the prior.

        Returns
        -------
        Tensor
            ``x_T`` at timestep ``K-1``, ``(n, C, H, W)``, typed like the data.

        Raises
        ------
        RuntimeError
            An ``n`` without a fitted prior (call :meth:`fit` first).
        """,
    "forward_transition": """
        Parameters
        ----------
        sample : Tensor, shape ``(N, C, H, W)``
            ``x_t``, float32 or float64.
        timestep, next_timestep : int
            ``-1 <= t < s <= K-1`` (``-1``: clean).
        generator : torch.Generator, optional
            Draws the noise.
        pred_original_sample : Tensor, optional
            The current clean estimate :math:`\\hat x_0` (shape of ``sample``);
            processes whose transition depends on ``x_t`` only ignore it.

        Returns
        -------
        Tensor
            ``x_s``, shaped and typed like ``sample``.

        Raises
        ------
        ValueError, TypeError
            Timesteps out of range, not integers, or ``s <= t``; a sample that
            is not a float ``(N, C, H, W)`` tensor.
        """,
}


def _with_sections(doc: str | None, fallback: str | None, sections: str) -> str:
    """A method's docstring: its own summary (or the base's) and the shared sections."""
    own = inspect.cleandoc(doc or fallback or "")
    own = own.split("\nParameters\n----------")[0].rstrip()
    return own + "\n\n" + inspect.cleandoc(sections) + "\n"


# ------------------------------------------------------------------------------ base class
class ForwardProcess(abc.ABC):
    """The interface of every forward process, and the machinery they share (config, timesteps, JSON).

    A subclass supplies the maths as the five abstract methods -- :meth:`add_noise`,
    :meth:`training_target`, :meth:`step`, :meth:`sample_prior`,
    :meth:`forward_transition` -- and passes its constructor arguments to
    ``super().__init__(**config)``; a subclass that omits one of them cannot be
    instantiated (``TypeError``).  Each override documents its maths only: the
    Parameters/Returns/Raises sections are the base's, appended to its
    docstring.  To make a process available by name, add it to
    :data:`pdediff.catalogue.PROCESSES`.

    Timesteps are ``0 .. K-1`` (``K = num_train_timesteps``) for every process;
    timestep ``t`` is the ``(t + 1)``-th degradation level and ``-1``
    (:data:`CLEAN`, "before 0") is the clean image.
    """

    #: The first (least degraded) timestep: 0 for every process.
    t_min: ClassVar[int] = 0
    #: How :meth:`set_timesteps` strides a schedule shorter than ``K``: ``"leading"``
    #: (diffusers' DDPMScheduler default: ``round(i K / n)``, ``i = n-1 .. 0``) or
    #: ``"linspace"`` (``round`` of ``n`` evenly spaced values from ``K-1`` down to 0, so that
    #: sampling starts at the top level, where a prior built from data lives).
    timestep_spacing: ClassVar[str] = "leading"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, sections in _SECTIONS.items():
            func = cls.__dict__.get(name)
            if func is not None and callable(func) and "----------" not in (func.__doc__ or ""):
                func.__doc__ = _with_sections(func.__doc__, getattr(ForwardProcess, name).__doc__, sections)

    def __init__(self, **config: Any) -> None:
        self.config = dict(config)
        self.num_train_timesteps = train_timesteps(config["num_train_timesteps"])
        self.prior_data: torch.Tensor | None = None
        self.set_timesteps(self.num_train_timesteps)

    # -- the contract ----------------------------------------------------------------
    @abc.abstractmethod
    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: Any) -> torch.Tensor:
        """The forward process: the degraded ``x_t`` of clean ``x0`` at ``timesteps``."""

    @abc.abstractmethod
    def training_target(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: Any) -> torch.Tensor:
        """What the model learns to output for ``x_t = add_noise(x0, noise, timesteps)``."""

    @abc.abstractmethod
    def step(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor,
             generator: torch.Generator | None = None) -> StepOutput:
        """One reverse step from a scheduled ``timestep`` to the next one (``-1``, clean, after the last)."""

    @abc.abstractmethod
    def sample_prior(self, n_or_data: Any, generator: torch.Generator | None = None) -> torch.Tensor:
        """The prior ``x_T`` that sampling starts from (timestep ``K-1``)."""

    @abc.abstractmethod
    def forward_transition(self, sample: torch.Tensor, timestep: int, next_timestep: int,
                           generator: torch.Generator | None = None, *,
                           pred_original_sample: torch.Tensor | None = None) -> torch.Tensor:
        r"""Draw ``x_s`` from ``x_t`` for ``next_timestep`` ``s`` > ``timestep`` ``t``: a forward jump.

        Applied to samples of :math:`q(x_t \mid x_0)` it yields samples of
        :math:`q(x_s \mid x_0)` (RePaint's resampling jumps, :func:`pdediff.torch.repaint`).
        """

    @property
    def t_max(self) -> int:
        """The last (most degraded) timestep, ``K - 1``; sampling starts here (or below, when strided)."""
        return self.num_train_timesteps - 1

    # -- schedule -------------------------------------------------------------------
    def set_timesteps(self, num_inference_steps: int) -> None:
        """Sampling schedule of ``num_inference_steps`` descending timesteps, ending at 0.

        With ``n = K`` it is every timestep ``K-1 .. 0``; shorter schedules are
        strided as :attr:`timestep_spacing` says.
        """
        K = self.num_train_timesteps
        n = check_integer(num_inference_steps, "num_inference_steps", 1, K,
                          message=f"{{num_inference_steps}} must be in [1, {K}]; got {num_inference_steps!r}")
        self.num_inference_steps = n
        if self.timestep_spacing == "linspace":
            ts = np.round(np.linspace(K - 1, 0, n)).astype(np.int64)
        else:
            ts = np.round(np.arange(n) * (K / n)).astype(np.int64)[::-1]
        self.timesteps = torch.from_numpy(ts.copy())

    def previous_timestep(self, timestep: Any) -> int:
        """The timestep after ``timestep`` in the current sampling schedule (``-1``, clean, after the last).

        Raises
        ------
        ValueError
            If ``timestep`` is not in :attr:`timesteps` (see :meth:`set_timesteps`).
        """
        t = int(timestep)
        ts = self.timesteps.tolist()
        if t not in ts:
            raise ValueError(
                f"timestep {t} is not in the current sampling schedule {_fmt_schedule(ts)} of "
                f"{type(self).__name__} (set_timesteps({self.num_inference_steps})); step() takes only "
                f"scheduled timesteps"
            )
        i = ts.index(t)
        return ts[i + 1] if i + 1 < len(ts) else CLEAN

    def sample_timesteps(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """Uniform training timesteps in ``[0, K-1]`` (every level sampling uses)."""
        return torch.randint(self.t_min, self.t_max + 1, (n,), generator=generator, device=device)

    def scale_model_input(self, sample: torch.Tensor, timestep: Any = None) -> torch.Tensor:
        """The model sees the sample as is (kept for diffusers compatibility)."""
        return sample

    # -- prior ------------------------------------------------------------------------
    def fit(self, data: torch.Tensor) -> ForwardProcess:
        """Remember training data for the prior (and its shape); returns ``self``."""
        _check_sample(data, "data")
        self.prior_data = data.detach()
        return self

    def _prior_images(self, n_or_data: Any, generator) -> torch.Tensor:
        if isinstance(n_or_data, torch.Tensor):
            _check_sample(n_or_data, "data")
            return n_or_data
        if self.prior_data is None:
            raise RuntimeError("call fit(data) first, or pass a batch of data to sample_prior")
        n = int(n_or_data)
        idx = torch.randint(0, self.prior_data.shape[0], (n,), generator=generator)
        return self.prior_data[idx]

    # -- config -------------------------------------------------------------------------
    def save_config(self, path: str | os.PathLike) -> None:
        """Write ``{"class": ..., **config}`` as JSON (a folder gets ``process_config.json``).

        The config holds the constructor's arguments only; a fitted prior is
        rebuilt by :meth:`fit` (deterministic: training refits it on resume).
        """
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, "process_config.json")
        with open(path, "w") as f:
            json.dump({"class": type(self).__name__, **self.config}, f, indent=2)

    @classmethod
    def from_config(cls, config: dict | str | os.PathLike) -> ForwardProcess:
        """Build from a config dict or a JSON file written by :meth:`save_config`."""
        if not isinstance(config, dict):
            path = os.fspath(config)
            if os.path.isdir(path):
                path = os.path.join(path, "process_config.json")
            with open(path) as f:
                config = json.load(f)
        config = dict(config)
        name = config.pop("class", cls.__name__)
        klass = cls if name == cls.__name__ and not inspect.isabstract(cls) else _class_named(name)
        if klass is None or (cls is not ForwardProcess and not issubclass(klass, cls)):
            raise ValueError(f"config is for {name!r}, not {cls.__name__}")
        return klass(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({args})"


def load_process(path: str | os.PathLike) -> ForwardProcess:
    """Rebuild any process from the JSON written by :meth:`ForwardProcess.save_config`."""
    return ForwardProcess.from_config(path)
