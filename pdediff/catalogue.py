"""Every name pdediff accepts, written once (torch-free).

The command line, the study, the run folders, the docs and the solvers all
import their method and process names from here, so that a name is added,
renamed or labelled in one place.  Importing this module imports neither
torch nor any optional library: a forward process is named by its import path
and loaded on demand (:func:`process_class`).

Vocabulary (``docs/conventions.rst``): *sampling steps* are
``num_inference_steps`` (``--num-inference-steps``), *optimiser steps* of a
training run are ``steps`` (``pdediff train --steps``), and *a trained model*
is a **run** (a run folder, :func:`pdediff.torch.load_run`; ``--run RUN`` on
the command line).  The training defaults of the library and the command
line are :data:`TRAIN_DEFAULTS`, also written once here.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

__all__ = [
    "HEAT_METHODS",
    "HEAT_SCHEMES",
    "HEAT_SPECTRA",
    "BOUNDARIES",
    "PM_METHODS",
    "CONDUCTANCES",
    "TENSOR_KINDS",
    "TENSOR_CONDUCTANCES",
    "LEARNED_DENOISERS",
    "INPAINT_METHODS",
    "ProcessEntry",
    "PROCESSES",
    "PROCESS_NAMES",
    "process_class",
    "BETA_SCHEDULES",
    "BETA_SCHEDULE_ALIASES",
    "TrainDefaults",
    "TRAIN_DEFAULTS",
]

#: :func:`pdediff.solve_heat` ``method``.
HEAT_METHODS = ("spectral", "explicit", "implicit")
#: :func:`pdediff.solve_heat` ``scheme`` (implicit method).
HEAT_SCHEMES = ("crank-nicolson", "backward-euler")
#: :func:`pdediff.solve_heat` ``spectrum`` (spectral method).
HEAT_SPECTRA = ("continuous", "discrete")
#: Boundary conditions of every solver.
BOUNDARIES = ("neumann", "dirichlet", "periodic")
#: :func:`pdediff.perona_malik` ``method``.
PM_METHODS = ("explicit", "aos")
#: :func:`pdediff.perona_malik` ``conductance`` (besides a callable).
CONDUCTANCES = ("exponential", "rational", "tukey")
#: :func:`pdediff.tensor_diffusion` ``kind``: edge- or coherence-enhancing diffusion.
TENSOR_KINDS = ("eed", "ced")
#: :func:`pdediff.tensor_diffusion` ``conductance`` (EED only; the first is the default).
TENSOR_CONDUCTANCES = ("weickert", "exponential", "rational")
#: The shipped learned denoisers (:func:`pdediff.torch.load_denoiser`, ``pdediff denoise --method``).
LEARNED_DENOISERS = ("tnrd", "cnn")
#: :func:`pdediff.inpaint` ``method``.
INPAINT_METHODS = ("harmonic", "biharmonic", "perona_malik", "learned")


@dataclass(frozen=True)
class ProcessEntry:
    """One forward process under its catalogue name.

    Attributes
    ----------
    name : str
        The name used by :func:`pdediff.torch.make_process`, run folders and ``--process``.
    cls : str
        Import path of the :class:`pdediff.torch.ForwardProcess` subclass, ``"module:Class"``.
    fixed : mapping
        Constructor arguments the name fixes (a config may repeat them, not change them).
    label : str
        Human-readable label (study tables, figures, help texts).
    """

    name: str
    cls: str
    label: str
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def load(self) -> type:
        """The process class (imports torch)."""
        module, _, qual = self.cls.partition(":")
        return getattr(importlib.import_module(module), qual)


_P = "pdediff.torch.processes"
_ENTRIES = (
    ProcessEntry("ddpm", f"{_P}.gaussian:GaussianDiffusion", "DDPM (Gaussian)"),
    ProcessEntry("ihdm", f"{_P}.heat_dissipation:HeatDissipation", "inverse heat dissipation"),
    ProcessEntry("blurring", f"{_P}.blurring:BlurringDiffusion", "blurring diffusion"),
    ProcessEntry("cold-heat", f"{_P}.cold:ColdDiffusion", "cold diffusion, heat",
                 MappingProxyType({"operator": "heat"})),
    ProcessEntry("cold-pm", f"{_P}.cold:ColdDiffusion", "cold diffusion, Perona–Malik",
                 MappingProxyType({"operator": "perona_malik"})),
    ProcessEntry("edge", f"{_P}.edge_preserving:EdgePreservingDiffusion", "edge-preserving diffusion"),
)

#: Forward processes by catalogue name, in the order the study and the help texts list them.
PROCESSES: Mapping[str, ProcessEntry] = MappingProxyType({e.name: e for e in _ENTRIES})
#: The catalogue names, in order.
PROCESS_NAMES = tuple(PROCESSES)


def process_class(name: str) -> type:
    """The :class:`~pdediff.torch.ForwardProcess` subclass behind catalogue name ``name``."""
    from .errors import ParameterError

    if name not in PROCESSES:
        raise ParameterError(f"{{process}} must be one of {', '.join(map(repr, PROCESS_NAMES))}; got {name!r}",
                             param="process")
    return PROCESSES[name].load()


#: ``beta_schedule`` of :class:`~pdediff.torch.GaussianDiffusion` and
#: :class:`~pdediff.torch.BlurringDiffusion`: ``"linear"`` (Ho et al.), ``"scaled_linear"``
#: (linear in :math:`\sqrt\beta`, as diffusers'), ``"cosine"`` (Nichol & Dhariwal, :math:`\beta \le 0.999`)
#: and ``"cosine_logsnr"`` (the cosine schedule with its log signal-to-noise ratio confined to
#: :math:`[-10, 10]`, as Hoogeboom & Salimans' blurring diffusion: blurring's default).
BETA_SCHEDULES = ("linear", "scaled_linear", "cosine", "cosine_logsnr")
#: diffusers' names for pdediff's schedules, accepted and stored under pdediff's name.
BETA_SCHEDULE_ALIASES: Mapping[str, str] = MappingProxyType({"squaredcos_cap_v2": "cosine"})


@dataclass(frozen=True)
class TrainDefaults:
    """The training settings used when none is given: one set for the library and the command line.

    :func:`pdediff.torch.train`, :func:`pdediff.torch.train_run` and
    ``pdediff train`` all take their defaults from :data:`TRAIN_DEFAULTS`.

    Attributes
    ----------
    steps : int
        Optimiser steps (``train_run``, ``pdediff train --steps``; :func:`~pdediff.torch.train` requires them).
    batch_size : int
        Images per optimiser step (the global batch across processes).
    lr : float
        Adam learning rate.
    ema_decay : float
        Decay of the exponential moving average of the weights.
    ema_warmup : bool
        Warm the EMA up: update ``k`` uses ``min(ema_decay, (1 + k) / (10 + k))``.
    seed : int
        Seed of the model's initialisation and of the generator of batches, timesteps and noise.
    checkpoint_every : int
        Optimiser steps between checkpoints.
    base : int
        Channels of the :class:`~pdediff.torch.UNet`'s first level.
    mults : tuple of int
        The UNet's channel multipliers per level.
    num_res_blocks : int
        Residual blocks per UNet level.
    """

    steps: int = 1500
    batch_size: int = 128
    lr: float = 1e-3
    ema_decay: float = 0.999
    ema_warmup: bool = True
    seed: int = 0
    checkpoint_every: int = 100
    base: int = 32
    mults: tuple = (1, 2)
    num_res_blocks: int = 1


#: The one set of training defaults (see :class:`TrainDefaults`).
TRAIN_DEFAULTS = TrainDefaults()
