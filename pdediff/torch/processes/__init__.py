"""Forward processes for learned reverse diffusion, shaped like diffusers' schedulers.

Every process maps ``(x0, timestep)`` to a degraded ``x_t`` and turns a model's
output back into a less degraded sample.  They share one interface -- the abstract
base class :class:`ForwardProcess`, whose abstract methods (``add_noise``,
``training_target``, ``step``, ``sample_prior``, ``forward_transition``) every
process implements -- so a single training loop and a single sampler
(:mod:`pdediff.torch.training`) drive them all; their names are
:data:`pdediff.catalogue.PROCESSES`:

* ``timesteps``: the sampling schedule, descending (``set_timesteps(n)`` to change it);
* ``sample_timesteps(batch, generator)``: training timesteps;
* ``add_noise(x0, noise, timesteps)``: the forward process ``x_t``;
* ``training_target(x0, noise, timesteps)``: what the model learns to output;
* ``scale_model_input(sample, timestep)``: the model's input (identity here);
* ``step(model_output, timestep, sample, generator=None)``: one reverse step,
  a :class:`StepOutput` with ``prev_sample`` and ``pred_original_sample``;
* ``previous_timestep(timestep)``: the next timestep of the schedule (``-1`` after the last);
* ``fit(data)`` / ``sample_prior(n_or_data, generator)``: the prior sample
  ``x_T`` (Gaussian noise, or degraded data for the non-Gaussian processes);
* ``save_config(path)`` / ``from_config(path)`` / :func:`load_process`: JSON round trip.

**Timesteps: one convention for every process.**  Timesteps are the integers ``0 .. K-1`` (``K = num_train_timesteps``), as in
diffusers: timestep ``t`` is the ``(t + 1)``-th degradation level, and ``-1``
(:data:`CLEAN`, "before 0") is the clean image.  So, for every process:

* ``timesteps`` descends and ends at ``0`` (the full schedule is ``K-1 .. 0``);
* ``sample_timesteps`` draws from ``[0, K-1]``, every level sampling visits;
* ``add_noise`` takes timesteps in ``[0, K-1]``; ``HeatDissipation.blur`` and
  ``ColdDiffusion.degrade`` also take ``-1`` (the clean image);
* ``step`` at timestep ``0`` goes to the clean image: its ``prev_sample`` is the
  clean estimate (no noise is added), and ``previous_timestep(0)`` is ``-1``;
* the data-built priors (IHDM, cold diffusion) live at timestep ``K-1``.

Why this one: it is diffusers' (whose schedulers, pipelines and UNets index
timesteps ``0 .. K-1``), so models and samplers written for diffusers plug in
unchanged, and the timestep a model is conditioned on is the same number for
all four processes.  The heat-based papers count levels ``1 .. K`` with level 0
clean; their level ``k`` is timestep ``k - 1`` here.

Shorter schedules (``set_timesteps(n)``, ``n < K``) are strided: the Gaussian
processes use diffusers' default ``"leading"`` spacing, the heat-based ones
``"linspace"`` from ``K-1`` down to 0 so that sampling starts where their prior
lives (:attr:`ForwardProcess.timestep_spacing`).  :meth:`ForwardProcess.step`
only takes timesteps of the current schedule (``ValueError`` otherwise).
"""

from ._base import CLEAN, ForwardProcess, StepOutput, load_process
from .blurring import BlurringDiffusion
from .cold import ColdDiffusion
from .edge_preserving import EdgePreservingDiffusion
from .gaussian import GaussianDiffusion
from .heat_dissipation import HeatDissipation

__all__ = [
    "CLEAN",
    "StepOutput",
    "ForwardProcess",
    "GaussianDiffusion",
    "HeatDissipation",
    "BlurringDiffusion",
    "ColdDiffusion",
    "EdgePreservingDiffusion",
    "load_process",
]
