"""Training across processes: torchrun with two CPU ranks (gloo) against one process, resume, launch errors.

Two ``torchrun --nproc-per-node 2`` launches (this file doubles as their worker
script, see ``_worker`` at the bottom) train a tiny UNet (base 8) on digits for
10 steps with a global batch of 16; the single-process reference runs here.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():  # pragma: no cover
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

from pdediff.torch import GaussianDiffusion, UNet, train, train_run  # noqa: E402
from pdediff.torch.distributed import DistributedError  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
STEPS, STOP, BATCH, EVERY = 10, 4, 16, 4
#: train_run's settings for every run here; ``pdediff train`` below spells the same ones.
SETTINGS = {"process": "ddpm", "data": "digits", "base": 8, "mults": (1, 2), "batch_size": BATCH, "lr": 1e-3,
            "seed": 0, "device": "cpu", "checkpoint_every": EVERY, "progress": False}
CLI = ["--process", "ddpm", "--data", "digits", "--base", "8", "--mults", "1,2", "--batch-size", str(BATCH),
       "--lr", "1e-3", "--seed", "0", "--device", "cpu", "--checkpoint-every", str(EVERY), "--quiet"]
#: Two ranks average gradients in another order than one process sums them: float32 rounding.  The losses
#: agree to 1.4e-7 relative (measured).  Weights: parameters whose gradient vanishes mathematically (a bias
#: before a GroupNorm with one channel per group, and what feeds only it) are moved in both runs by Adam
#: normalising rounding noise, up to ~0.1 lr per step, so they differ by up to 1e-4 after 10 steps (measured
#: 9.9e-5); all weights together differ by 4.7e-4 of how far training moved them (measured).
LOSS_RTOL, WEIGHT_ATOL, WEIGHT_REL = 1e-5, 3e-4, 5e-3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
           "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), *args]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def _ckpt(folder: Path) -> dict:
    return torch.load(folder / "checkpoint.pt", weights_only=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run A: 10 steps on two ranks; run B: stopped after 4 steps (same launch), then resumed to 10 by
    ``pdediff train`` under a second torchrun; S: 10 steps in this process."""
    tmp = tmp_path_factory.mktemp("dist")
    a, b, s, marks = tmp / "a", tmp / "b", tmp / "single", tmp / "marks"
    marks.mkdir()
    _torchrun(str(Path(__file__).resolve()), "worker", str(a), str(b), str(marks))
    stopped = _ckpt(b)
    _torchrun("-m", "pdediff", "train", "--out", str(b), "--steps", str(STEPS), *CLI)
    train_run(s, steps=STEPS, **SETTINGS)
    return {"a": a, "b": b, "single": s, "marks": marks, "stopped": stopped}


def test_two_processes_match_one_process(runs):
    a, s = _ckpt(runs["a"]), _ckpt(runs["single"])
    assert a["step"] == s["step"] == STEPS and a["process"] == s["process"]
    la, ls = a["losses"].numpy(), s["losses"].numpy()
    # same global batches, timesteps and noise: the loss curves agree to rounding (and are no constant)
    np.testing.assert_allclose(la, ls, rtol=LOSS_RTOL, atol=0)
    assert np.ptp(ls) > 1e-3
    # the generator advanced identically: every rank drew the whole global batch, as one process does
    assert torch.equal(a["generator"], s["generator"])
    init = _initial_state()
    for key in ("model", "ema"):
        assert list(a[key]) == list(s[key]) == list(init)
        for k in a[key]:
            torch.testing.assert_close(a[key][k], s[key][k], rtol=0, atol=WEIGHT_ATOL, msg=f"{key}.{k}")
        diff = sum(float((a[key][k] - s[key][k]).square().sum()) for k in init) ** 0.5
        moved = sum(float((s[key][k] - init[k]).square().sum()) for k in init) ** 0.5
        assert moved > 0.1 and diff < WEIGHT_REL * moved, (key, diff, moved)
    rec = json.loads((runs["a"] / "run.json").read_text())
    assert rec["result"]["world_size"] == 2 and rec["result"]["step"] == STEPS
    assert rec["training"] == json.loads((runs["single"] / "run.json").read_text())["training"]


def _initial_state() -> dict:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return UNet(1, base=8, mults=(1, 2)).state_dict()


def test_ranks_agree_and_only_rank0_writes(runs):
    marks = runs["marks"]
    r0, r1 = (json.loads((marks / f"rank{r}.json").read_text()) for r in (0, 1))
    # every rank ends with the same losses (the global mean), weights and EMA
    assert r0["world_size"] == r1["world_size"] == 2 and (r0["rank"], r1["rank"]) == (0, 1)
    assert r0["losses"] == r1["losses"] and len(r0["losses"]) == STEPS
    assert r0["model"] == r1["model"] and r0["ema"] == r1["ema"]
    assert r0["losses"] == _ckpt(runs["a"])["losses"].tolist()
    # rank 0 alone wrote checkpoints: at steps 4 and 8 and at the end (run A), at 4 twice (run B's end)
    saves = {r: (marks / f"saves-rank{r}.txt").read_text().split() if (marks / f"saves-rank{r}.txt").exists()
             else [] for r in (0, 1)}
    assert saves == {0: ["a:4", "a:8", "a:10", "b:4", "b:4"], 1: []}
    # a launch whose ranks disagree (here: the seed) stops every rank with a message naming the difference
    for r in (r0, r1):
        assert "settings" in r["inconsistent"] and "rank 1" in r["inconsistent"], r["inconsistent"]
    assert sorted(os.listdir(runs["a"])) == ["checkpoint.pt", "run.json"]


def test_resumed_distributed_run_equals_uninterrupted(runs):
    stopped, a, b = runs["stopped"], _ckpt(runs["a"]), _ckpt(runs["b"])
    assert stopped["step"] == STOP and b["step"] == a["step"] == STEPS
    assert torch.equal(b["losses"], a["losses"]) and torch.equal(b["generator"], a["generator"])
    for key in ("model", "ema"):
        for k in a[key]:
            assert torch.equal(b[key][k], a[key][k]), (key, k)
    for i, st in a["optimizer"]["state"].items():
        for k, v in st.items():
            assert torch.equal(v, b["optimizer"]["state"][i][k]), (i, k)
    assert not torch.equal(stopped["model"]["out.weight"], a["model"]["out.weight"])  # it did train on
    rb = json.loads((runs["b"] / "run.json").read_text())
    assert rb["result"]["step"] == STEPS and rb["result"]["world_size"] == 2


# ------------------------------------------------------------------ launch errors (in this process, no peers)
_FULL = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29599"}


def _tiny(**kw):
    data = torch.rand(20, 1, 8, 8) * 2 - 1
    return train(UNet(1, base=8, mults=(1,)), GaussianDiffusion(num_train_timesteps=20), data,
                 **({"steps": 2, "batch_size": 4, "progress": False} | kw))


@pytest.mark.parametrize("env, match", [
    ({"RANK": "0", "WORLD_SIZE": "2"}, "RANK, WORLD_SIZE set but MASTER_ADDR, MASTER_PORT missing"),
    ({"LOCAL_RANK": "1"}, "LOCAL_RANK set but RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT missing"),
    (_FULL | {"RANK": "2"}, r"RANK=2 but WORLD_SIZE=2"),
    (_FULL | {"WORLD_SIZE": "two"}, "WORLD_SIZE must be an integer >= 1; got 'two'"),
    (_FULL | {"MASTER_PORT": "70000"}, "MASTER_PORT must be a TCP port"),
])
def test_inconsistent_environment_is_refused(monkeypatch, env, match):
    for k in _FULL:
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(DistributedError, match=match):
        _tiny()
    assert not torch.distributed.is_initialized()


def test_global_batch_must_divide(monkeypatch, tmp_path):
    for k, v in _FULL.items():
        monkeypatch.setenv(k, v)
    # refused before joining a group (which would wait for the missing peer)
    with pytest.raises(ValueError, match=r"batch_size=15 is the global batch .* divisible by the number of "
                                         r"processes \(2\).*multiple of 2"):
        _tiny(batch_size=15)
    with pytest.raises(ValueError, match="batch_size=9 .*divisible"):
        train_run(tmp_path / "r", steps=1, **(SETTINGS | {"batch_size": 9}))
    assert not torch.distributed.is_initialized() and not (tmp_path / "r").exists()


def test_alone_unless_launched(monkeypatch):
    for k in _FULL:
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(DistributedError, match="distributed=True, but .*torchrun"):
        _tiny(distributed=True)
    with pytest.raises(ValueError, match="distributed must be None .*True or False; got 'yes'"):
        _tiny(distributed="yes")
    torch.manual_seed(0)
    alone = _tiny().losses
    # torchrun --nproc-per-node 1 and distributed=False with a full environment: one process, the same run
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    torch.manual_seed(0)
    assert _tiny().losses == alone
    for k, v in _FULL.items():
        monkeypatch.setenv(k, v)
    torch.manual_seed(0)
    assert _tiny(distributed=False).losses == alone
    assert not torch.distributed.is_initialized()


# ------------------------------------------------------------------ the worker torchrun starts
def _worker(a: str, b: str, marks: str) -> None:
    import torch.distributed as dist

    import pdediff.torch.runs as runs_mod
    import pdediff.torch.training as training_mod

    rank = int(os.environ["RANK"])
    save, real_train = training_mod._save_atomic, runs_mod.train

    def recording_save(obj, path):  # which rank writes which checkpoint
        with open(Path(marks) / f"saves-rank{rank}.txt", "a") as f:
            f.write(f"{Path(path).parent.name}:{obj['step']}\n")
        save(obj, path)

    def recording_train(model, *args, **kw):  # this rank's in-memory state after training
        res = real_train(model, *args, **kw)
        if Path(kw["checkpoint_dir"]).name == "a":
            from pdediff.torch.distributed import _digest

            rec = {"rank": dist.get_rank(), "world_size": dist.get_world_size(), "losses": res.losses,
                   "model": _digest(*model.state_dict().values()).hex(),
                   "ema": _digest(*res.ema_model.state_dict().values()).hex()}
            (Path(marks) / f"rank{rank}.json").write_text(json.dumps(rec))
        return res

    training_mod._save_atomic, runs_mod.train = recording_save, recording_train
    train_run(a, steps=STEPS, **SETTINGS)
    train_run(b, steps=STOP, **SETTINGS)
    try:  # ranks launched with different seeds
        _tiny(seed=rank)
        msg = "no error"
    except DistributedError as exc:
        msg = str(exc)
    rec = json.loads((Path(marks) / f"rank{rank}.json").read_text()) | {"inconsistent": msg}
    (Path(marks) / f"rank{rank}.json").write_text(json.dumps(rec))


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    _worker(*sys.argv[2:5])
