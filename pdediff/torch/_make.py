"""Forward processes by catalogue name (:data:`pdediff.catalogue.PROCESSES`), sized for the images at hand."""

from __future__ import annotations

import inspect
import json
import math
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..catalogue import PROCESS_NAMES, PROCESSES, process_class
from ..errors import ParameterError
from .processes import ForwardProcess

__all__ = ["make_process", "default_process_config", "BLUR_FRACTION"]

#: Fraction of the image size that the strongest blur of the heat-based processes spans (in pixels).
BLUR_FRACTION = 0.75
#: Explicit Perona–Malik time step in 2-D (the stability limit), used to size cold-pm's iterations.
_PM_DT = 0.25


def _image_size(image_size: Any) -> tuple[int, int]:
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        image_size = (int(image_size), int(image_size))
    try:
        h, w = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise ParameterError(f"{{image_size}} must be a positive integer or a pair (height, width); got "
                             f"{image_size!r}", param="image_size") from None
    if h < 1 or w < 1:
        raise ParameterError(f"{{image_size}} must be positive; got {image_size!r}", param="image_size")
    return h, w


def _read_config(config: Any) -> dict:
    if config is None:
        return {}
    if isinstance(config, dict):
        return dict(config)
    if isinstance(config, (str, os.PathLike)):
        path = Path(config)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ParameterError(f"{{config}} {path}: cannot read: {exc.strerror or exc}", param="config") from None
        try:
            out = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParameterError(f"{{config}} {path}: not valid JSON ({exc.msg}, line {exc.lineno})",
                                 param="config") from None
        if not isinstance(out, dict):
            raise ParameterError(f"{{config}} {path}: expected a JSON object of constructor arguments; got "
                                 f"{type(out).__name__}", param="config")
        return out
    raise ParameterError(f"{{config}} must be a dict or the path of a JSON file; got {type(config).__name__}",
                         param="config")


#: Constructor keys earlier versions wrote into run.json that are ignored (with a DeprecationWarning) on load.
_RETIRED: dict[str, dict[str, str]] = {
    "ColdDiffusion": {"prior_components": "the prior is now the fully degraded training images plus prior_noise, "
                                          "not a mixture over constant images (sampling only; the model is unchanged)"},
}


def _unknown_process(name: Any) -> ParameterError:
    return ParameterError(f"{{process}} must be one of {', '.join(map(repr, PROCESS_NAMES))}; got {name!r}",
                          param="process")


def default_process_config(name: str, image_size: Any, num_train_timesteps: int | None = None) -> dict:
    """The constructor arguments :func:`make_process` uses for ``name`` on images of ``image_size``.

    ``L = max(H, W)``; heat-based processes blur up to ``0.75 L`` pixels
    (heat time ``(0.75 L)^2 / 2``, which damps the slowest non-constant
    Neumann mode to ``exp(-pi^2 0.75^2 / 2)`` ≈ 6 %):

    * ``ddpm``: 200 timesteps, linear betas scaled by ``1000 / K`` (``1e-4``
      to ``0.02`` at ``K = 1000``; ``5e-4`` to ``0.1`` at 200), so that the
      last level is pure noise for any ``K``;
    * ``ihdm``: 50 timesteps, ``sigma_blur_min = 0.5``, ``sigma_blur_max = 0.75 L``;
    * ``blurring``: 200 timesteps, ``sigma_blur_max = 0.75 L``, the paper's cosine schedule with
      log-SNR in ``[-10, 10]`` (``"cosine_logsnr"``);
    * ``cold-heat``: 50 timesteps, the IHDM blur schedule;
    * ``cold-pm``: 50 timesteps, ``kappa = 1.0`` (half the [-1, 1] data
      range: strong edges survive the first levels, the last level is nearly
      flat so that the mixture prior fits), and ``iters_per_level`` such that
      the ``K * iters_per_level`` explicit steps span at least the heat time
      of ``cold-heat``'s last level;
    * ``edge``: DDPM's schedule above, with the rational conductance,
      ``kappa`` from 0.01 to 0.6 (intensity per pixel on [-1, 1] data: a
      full-range edge, difference 2, keeps its noise damped to a tenth or
      less until the transition), the cosine transition complete at half of
      the timesteps, no Catté smoothing.
    """
    h, w = _image_size(image_size)
    L = max(h, w)
    smax = BLUR_FRACTION * L
    if name == "ddpm":
        K = 200 if num_train_timesteps is None else int(num_train_timesteps)
        scale = 1000.0 / max(K, 1)
        return {"num_train_timesteps": K, "beta_schedule": "linear", "beta_start": min(1e-4 * scale, 0.5),
                "beta_end": min(0.02 * scale, 0.999)}
    if name == "edge":
        ddpm = default_process_config("ddpm", image_size, num_train_timesteps)
        return ddpm | {"conductance": "rational", "kappa_min": 0.01, "kappa_max": 0.6, "transition": "cosine",
                       "transition_time": 0.5, "steepness": 10.0, "sigma": 0.0, "edge_strength": 1.0}
    if name == "ihdm":
        K = 50 if num_train_timesteps is None else int(num_train_timesteps)
        return {"num_train_timesteps": K, "sigma_blur_min": 0.5, "sigma_blur_max": smax, "training_noise": 0.01,
                "sampling_noise": None}
    if name == "blurring":
        K = 200 if num_train_timesteps is None else int(num_train_timesteps)
        return {"num_train_timesteps": K, "sigma_blur_max": smax, "min_scale": 0.001, "beta_schedule": "cosine_logsnr"}
    if name == "cold-heat":
        K = 50 if num_train_timesteps is None else int(num_train_timesteps)
        return {"num_train_timesteps": K, "operator": "heat", "sigma_blur_min": 0.5, "sigma_blur_max": smax}
    if name == "cold-pm":
        K = 50 if num_train_timesteps is None else int(num_train_timesteps)
        iters = max(1, math.ceil(smax**2 / 2 / _PM_DT / max(K, 1)))
        return {"num_train_timesteps": K, "operator": "perona_malik", "iters_per_level": iters, "kappa": 1.0,
                "sigma_blur_max": smax}
    raise _unknown_process(name)


def _as_config_error(exc: ParameterError, keys: list[str]) -> ParameterError:
    """``exc`` with its constructor keywords named as ``process.config.<key>`` (as in run.json and ``--config``)."""
    def nest(m: re.Match) -> str:
        return "{process.config." + m.group(1) if m.group(1) in keys else m.group(0)

    template = re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*)(?=[=}])", nest, exc.template)
    param = f"process.config.{exc.param}" if exc.param in keys else exc.param
    return type(exc)(template, param=param)


def make_process(name: str, *, image_size: int | tuple[int, int], config: dict | str | os.PathLike | None = None
                 ) -> ForwardProcess:
    """Build a forward process by name, with defaults sized for small images.

    Parameters
    ----------
    name : {"ddpm", "ihdm", "blurring", "cold-heat", "cold-pm", "edge"}
        A name of :data:`pdediff.catalogue.PROCESSES`:
        :class:`~pdediff.torch.GaussianDiffusion`,
        :class:`~pdediff.torch.HeatDissipation`,
        :class:`~pdediff.torch.BlurringDiffusion`,
        :class:`~pdediff.torch.ColdDiffusion` with the heat or the
        Perona–Malik degradation, and
        :class:`~pdediff.torch.EdgePreservingDiffusion`.
    image_size : int or (int, int)
        ``(H, W)`` of the training images; the blur range of the heat-based
        processes is sized to it (:func:`default_process_config` lists every
        default).
    config : dict or os.PathLike, optional
        Constructor arguments overriding the defaults, or a JSON file of them
        (e.g. written by :meth:`ForwardProcess.save_config`; its ``"class"``
        must then match ``name``).  A changed ``num_train_timesteps`` also
        rescales the defaults that depend on it (DDPM's betas, cold-pm's
        iterations per level) unless they are given too.

    Returns
    -------
    ForwardProcess
        Not yet fitted (``process.fit(data)`` builds the data-based priors).

    Raises
    ------
    ~pdediff.errors.ParameterError
        Unknown ``name`` (``{process}``); a config key the constructor does
        not take (the message lists the ones it takes); a key the name fixes
        (``operator`` of the cold processes) set to another value; a
        ``"class"`` that is not ``name``'s; or a value the constructor refuses
        (named ``{process.config.<key>}``).
    """
    if name not in PROCESSES:
        raise _unknown_process(name)
    entry = PROCESSES[name]
    klass = process_class(name)
    cfg = _read_config(config)
    cls_name = cfg.pop("class", klass.__name__)
    if cls_name != klass.__name__:
        raise ParameterError(f"{{config}} is for {cls_name!r}, but {{process}} {name!r} is a {klass.__name__}",
                             param="config")
    allowed = [p for p in inspect.signature(klass.__init__).parameters if p != "self"]
    for key, why in _RETIRED.get(klass.__name__, {}).items():
        if key in cfg and key not in allowed:
            # runs saved by earlier versions keep loading: the trained model does not depend on the key
            warnings.warn(f"config key {key!r} of {klass.__name__} is no longer used and was ignored: {why}",
                          DeprecationWarning, stacklevel=2)
            del cfg[key]
    unknown = sorted(set(cfg) - set(allowed))
    if unknown:
        raise ParameterError(f"{{config}}: unknown key{'s' if len(unknown) > 1 else ''} "
                             f"{', '.join(map(repr, unknown))} for {{process}} {name!r} ({klass.__name__}); "
                             f"allowed: {', '.join(allowed)}", param="config")
    for k, v in entry.fixed.items():
        if k in cfg and cfg[k] != v:
            raise ParameterError(f"{{config}}: {k}={cfg[k]!r} contradicts {{process}} {name!r} ({k}={v!r}); "
                                 f"choose the process by name instead", param="config")
    K = cfg.get("num_train_timesteps")
    if K is not None and (isinstance(K, bool) or not isinstance(K, (int, np.integer)) or K < 1):
        raise ParameterError(f"{{process.config.num_train_timesteps}} must be a positive integer; "
                             f"got {K!r}", param="process.config.num_train_timesteps")
    kwargs = default_process_config(name, image_size, None if K is None else min(int(K), _MAX_K)) | cfg
    try:
        return klass(**kwargs)
    except ParameterError as exc:
        raise _as_config_error(exc, allowed) from None


#: Sizing the defaults for a ``num_train_timesteps`` beyond the processes' limit is pointless (refused by them).
_MAX_K = 10**7
