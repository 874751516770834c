"""The generation study: five forward processes, one network and one training budget, offline metrics.

Every process trains the same :class:`~pdediff.torch.UNet` with the same
optimiser, batch size, number of steps and data (a run folder per process and
seed, made by :func:`pdediff.torch.train_run`, so an interrupted study resumes
training where it stopped).  Samples are compared with the held-out split in
the feature space of a classifier (or, for unlabelled data, an autoencoder)
trained locally on the training split (:class:`pdediff.metrics.FeatureExtractor`).
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..catalogue import PROCESS_NAMES, PROCESSES
from ._common import ArmCache


@dataclass(frozen=True)
class GenerateSettings:
    data: tuple = ("digits",)
    processes: tuple = PROCESS_NAMES
    steps: int = 1500
    base: int = 16
    mults: tuple = (1, 2)
    batch_size: int = 128
    lr: float = 1e-3
    n_samples: int | None = None  # None: as many as held-out images
    sampling_steps: dict = field(default_factory=dict)  # per process; default: every training timestep
    config: dict = field(default_factory=dict)  # per process: constructor overrides

    @classmethod
    def quick(cls) -> GenerateSettings:
        return cls(steps=60, base=8, mults=(1,), batch_size=32, n_samples=120,
                   config={"ddpm": {"num_train_timesteps": 50}, "ihdm": {"num_train_timesteps": 10},
                           "blurring": {"num_train_timesteps": 50}, "cold-heat": {"num_train_timesteps": 10},
                           "cold-pm": {"num_train_timesteps": 10}, "edge": {"num_train_timesteps": 50}})


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


#: Version of an arm's record (part of its cache key): 2 = 1-NN on equal sizes, training time from the run.
_RECORD = 2


def _label(proc: str) -> str:
    """The catalogue's label of a process name (the name itself for a name outside the catalogue)."""
    entry = PROCESSES.get(proc)
    return entry.label if entry is not None else proc


def set_metrics(samples: np.ndarray, reference: np.ndarray, train: np.ndarray, features, *, seed: int = 0) -> dict:
    """Every metric of one set of samples against the held-out reference set.

    Parameters
    ----------
    samples, reference, train : numpy.ndarray, shape (N, C, H, W)
        The samples, the held-out set and the training set (any N each).
    features
        A fitted :class:`pdediff.metrics.FeatureExtractor` (or any object with
        ``kind``, ``transform(images) -> (N, D)`` and, for ``kind ==
        "classifier"``, ``predict_proba``).
    seed : int
        Seed of the random projections and of the subsample below.

    Returns
    -------
    dict
        Metric name -> value (``spectrum`` a dict of bands).  The 1-NN
        two-sample test compares sets of *equal* size (its ideal value is 0.5
        only then): the larger set is subsampled, seeded, to the smaller one's
        size, which ``one_nn_n`` records.
    """
    from .. import metrics as M

    fs, fr = features.transform(samples), features.transform(reference)
    m = min(len(fs), len(fr))
    out = {
        "frechet": M.frechet_distance(fs, fr),
        "sliced_wasserstein": M.sliced_wasserstein(fs, fr, seed=seed),
        "one_nn_accuracy": M.one_nn_accuracy(_subset(fs, m, 300 + seed), _subset(fr, m, 200 + seed)),
        "one_nn_n": m,
        **{f"{k}": float(v) for k, v in M.precision_recall(fr, fs).items()},
        **{f"{k}": float(v) for k, v in M.density_coverage(fr, fs).items()},
        "memorisation_ratio": M.memorisation_ratio(samples.reshape(len(samples), -1),
                                                   train.reshape(len(train), -1),
                                                   reference.reshape(len(reference), -1)),
    }
    spec = M.spectrum_error(reference[:, 0], samples[:, 0])
    out["spectrum"] = {k: v for k, v in spec.items() if k != "band_edges"}
    if features.kind == "classifier":
        out.update({f"label_{k}": float(v) for k, v in M.label_statistics(features.predict_proba(samples)).items()})
    return out


def _subset(x: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``min(n, len(x))`` rows of ``x`` drawn without replacement (seeded), in their order (all of ``x`` if
    ``n >= len(x)``)."""
    if n >= len(x):
        return x
    idx = np.random.default_rng(seed).choice(len(x), size=min(n, len(x)), replace=False)
    return x[np.sort(idx)]


def run_generate(settings: GenerateSettings, *, seeds: int, out: str | None, progress: bool = True,
                 device: str | None = None) -> dict:
    """Run the generation study; returns the ``generate`` section of ``results.json``."""
    import torch

    from ..metrics import FeatureExtractor
    from ..torch import load_dataset, load_run, train_run

    root = out if out is not None else _tmpdir()
    cache = ArmCache(os.path.join(root, "cache", "generate"))
    result: dict = {"datasets": {}, "processes": {p: _label(p) for p in settings.processes}}
    for data in settings.data:
        train_x, train_y = load_dataset(data, split="train", seed=0)
        test_x, _ = load_dataset(data, split="test", seed=0)
        train_np, test_np = _np(train_x), _np(test_x)
        # The content, not the name, identifies the data: a changed file never reuses a cached arm or run.
        digest = hashlib.sha256(np.ascontiguousarray(train_np).tobytes()
                                + np.ascontiguousarray(test_np).tobytes()).hexdigest()[:10]
        # Models and floor get the same sample size (the floor cannot draw more than the training split).
        n = min(int(settings.n_samples or len(test_np)), len(train_np))
        t0 = time.perf_counter()
        features = FeatureExtractor.fit(train_np, None if train_y is None else _np(train_y), seed=0)
        entry: dict = {"shape": list(train_np.shape[1:]), "n_train": len(train_np), "n_test": len(test_np),
                       "digest": digest,
                       "n_samples": n, "features": {"kind": features.kind,
                                                     "seconds": time.perf_counter() - t0,
                                                     **_feature_quality(features)},
                       "floor": {}, "runs": {}}
        # The real-vs-real floor: n training images (never seen as reference) against the held-out set,
        # at the sample size every model gets; one value per seed of the subset.
        floors = [set_metrics(_subset(train_np, n, 100 + s), test_np, train_np, features, seed=s)
                  for s in range(max(seeds, 1))]
        for f in floors:  # its samples *are* training images: the ratio is 0 by construction, not a finding
            f["memorisation_ratio"] = None
        entry["floor"] = {"seeds": floors}
        for proc in settings.processes:
            runs = []
            for seed in range(seeds):
                name = _run_name(data, digest, proc, seed)
                run_dir = os.path.join(root, "runs", name)
                arm = {"data": data, "digest": digest, "process": proc, "seed": seed, "n": n,
                       "record": _RECORD, **_key(settings, proc)}

                def run_arm(proc=proc, seed=seed, run_dir=run_dir):
                    rec: dict = {}
                    t0 = time.perf_counter()
                    trained = train_run(run_dir, process=proc, data=data, steps=settings.steps, base=settings.base,
                                        mults=tuple(settings.mults), batch_size=settings.batch_size,
                                        lr=settings.lr, seed=seed, device=device,
                                        config=settings.config.get(proc) or None, progress=progress)
                    took = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    run = load_run(run_dir, device=device)
                    rec.update(_times(run.config, took, trained.step > trained.resumed_from,
                                      time.perf_counter() - t0))
                    rec["final_loss"] = float(np.mean(_np(run.losses)[-50:]))
                    steps = settings.sampling_steps.get(proc)
                    t0 = time.perf_counter()
                    samples = run.sample(n, num_inference_steps=steps, seed=seed)
                    rec["sample_seconds"] = time.perf_counter() - t0
                    rec["sampling_steps"] = int(run.process.num_inference_steps)
                    g = torch.Generator().manual_seed(10_000 + seed)
                    prior = _np(run.process.sample_prior(n, g)).astype(np.float32)
                    rec["metrics"] = set_metrics(samples, test_np, train_np, features, seed=seed)
                    rec["prior"] = {"frechet": float(_frechet(features, prior, test_np))}
                    np.save(os.path.join(run_dir, "samples.npy"), samples[:64])
                    return rec

                runs.append(cache.get_or_run(f"gen-{name}", arm, run_arm))
            entry["runs"][proc] = runs
        result["datasets"][data] = entry
    return result


def _times(record: dict, call_seconds: float, trained: bool, load_seconds: float) -> dict:
    """A run's training time as recorded in its ``run.json`` when it was trained, and this call's load time.

    Parameters
    ----------
    record : dict
        The run's ``run.json`` (:attr:`pdediff.torch.Run.config`).
    call_seconds : float
        Wall time of this call's :func:`~pdediff.torch.train_run`: training
        if it trained, only loading if the run was finished already.
    trained : bool
        Whether this call trained any step.
    load_seconds : float
        Wall time of loading the run for sampling.

    Returns
    -------
    dict
        ``train_seconds`` (all training calls of the run together, from its
        record; never a load time) and ``load_seconds`` (reading the run,
        separately).
    """
    recorded = (record.get("result") or {}).get("train_seconds")
    if recorded is None:  # a run folder without the record: this call's time is all that is known
        recorded = call_seconds if trained else None
    return {"train_seconds": None if recorded is None else float(recorded),
            "load_seconds": float(load_seconds + (0.0 if trained else call_seconds))}


def _frechet(features, a: np.ndarray, b: np.ndarray) -> float:
    from ..metrics import frechet_distance

    return frechet_distance(features.transform(a), features.transform(b))


def _feature_quality(features) -> dict:
    out = {}
    for k in ("accuracy", "reconstruction_error"):
        v = getattr(features, k, None)
        if v is not None:
            out[k] = float(v)
    return out


def _key(settings: GenerateSettings, proc: str) -> dict:
    d = asdict(settings)
    d.pop("data")
    d.pop("processes")
    d["config"] = settings.config.get(proc)
    d["sampling_steps"] = settings.sampling_steps.get(proc)
    return d


def _run_name(data: str, digest: str, proc: str, seed: int) -> str:
    return f"{_slug(data)}-{digest}-{proc}-seed{seed}"


def _slug(data: str) -> str:
    base = os.path.basename(os.path.normpath(str(data)))
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in base) or "data"


def _tmpdir() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="pdediff-study-")


def figures(result: dict, out: str, *, trajectories: bool = True) -> list[str]:
    """Sample grids per process (seed 0), and prior-to-sample trajectories."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .._figures import save_atomic
    from ..torch import load_run

    paths = []
    os.makedirs(os.path.join(out, "figures"), exist_ok=True)
    for data, entry in result["datasets"].items():
        procs = list(entry["runs"])
        fig, axes = plt.subplots(1, len(procs), figsize=(2.6 * len(procs), 2.9), squeeze=False)
        for ax, proc in zip(axes[0], procs):
            s = np.load(os.path.join(out, "runs", _run_name(data, entry["digest"], proc, 0), "samples.npy"))[:36]
            ax.imshow(_grid(s), cmap="gray", vmin=-1, vmax=1)
            ax.set_title(_label(proc), fontsize=8)
            ax.set_axis_off()
        fig.tight_layout()
        p = os.path.join(out, "figures", f"samples-{_slug(data)}.png")
        save_atomic(fig, p, dpi=120)
        plt.close(fig)
        paths.append(p)
        if trajectories:
            fig, axes = plt.subplots(len(procs), 8, figsize=(8 * 1.1, 1.2 * len(procs)), squeeze=False)
            for row, proc in zip(axes, procs):
                run = load_run(os.path.join(out, "runs", _run_name(data, entry["digest"], proc, 0)))
                _, traj = run.sample(4, seed=0, trajectory=True)
                picks = np.linspace(0, len(traj) - 1, 8).round().astype(int)
                for ax, i in zip(row, picks):
                    ax.imshow(_grid(_np(traj[i])[:4], cols=2), cmap="gray", vmin=-1, vmax=1)
                    ax.set_xticks([])
                    ax.set_yticks([])
                row[0].set_ylabel(proc, fontsize=7)
            fig.suptitle("prior → sample", fontsize=9)
            fig.tight_layout()
            p = os.path.join(out, "figures", f"trajectories-{_slug(data)}.png")
            save_atomic(fig, p, dpi=120)
            plt.close(fig)
            paths.append(p)
    return paths


def _grid(x: np.ndarray, cols: int | None = None) -> np.ndarray:
    """Images ``(N, 1, H, W)`` in [-1, 1] as one mosaic (clipped; black borders)."""
    from .._figures import mosaic

    tiles = np.clip(np.asarray(x)[:, 0], -1, 1)
    return mosaic(list(tiles), cols or int(np.ceil(np.sqrt(len(tiles)))), fill=-1.0)
