"""Classical versus learned diffusion, measured: the study behind ``pdediff study``.

Two studies share one output folder:

* **denoise** — one step, no sampling: heat blur, Perona–Malik, scikit-image's
  TV/bilateral/wavelet/non-local means, BM3D and two learned denoisers (a DDPM
  model's x̂₀ at the matching timestep, and a cold-diffusion model over
  Perona–Malik) on held-out test images at 2, 5, 10 and 20 % Gaussian noise;
  PSNR, SSIM and time per image (:mod:`pdediff.study._denoise`).
* **generate** — DDPM, inverse heat dissipation, blurring diffusion and cold
  diffusion with heat and with Perona–Malik degradation (the processes of
  :data:`pdediff.catalogue.PROCESSES`), trained with the same network,
  optimiser, batch size, steps and data, compared by offline metrics in the
  feature space of a locally trained classifier, next to the real-vs-real
  floor (:mod:`pdediff.study._generate`).

:func:`run_study` (:mod:`pdediff.study._run`) writes ``results.json`` (every
number with its settings, versions, seeds and wall times;
:data:`RESULTS_SCHEMA`), ``results.md`` and figures, and keeps every finished
arm under ``cache/`` and every trained model under ``runs/`` so that an
interrupted study resumes where it stopped.  Needs the ``study`` extra (``pip
install "pdediff[study]"``: PyTorch, scikit-image, scikit-learn, jsonschema,
and BM3D, which is skipped with a note when absent).
"""

from ._denoise import LEVELS, METHODS, TEST_IMAGES, TRAIN_IMAGES, DenoiseSettings
from ._generate import GenerateSettings
from ._report import RESULTS_SCHEMA, load_results, validate_results
from ._run import run_study

__all__ = ["run_study", "load_results", "validate_results", "RESULTS_SCHEMA", "DenoiseSettings",
           "GenerateSettings", "TEST_IMAGES", "TRAIN_IMAGES", "LEVELS", "METHODS"]
