"""Write safety: file modes, all-or-nothing outputs, no partial files after signals."""

import os
import random
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pdediff.io import atomic_path, atomic_paths
from pdediff.io import _atomic

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def umask():
    old = os.umask(0o022)
    os.umask(old)

    def set_(mask):
        os.umask(mask)

    yield set_
    os.umask(old)


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


@pytest.mark.parametrize("mask,expect", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_get_the_umask_mode(tmp_path, umask, mask, expect):
    """Every output used to be created 0600 whatever the umask."""
    umask(mask)
    with atomic_path(tmp_path / "a.npy") as tmp:
        np.save(tmp, np.zeros(3))
    assert _mode(tmp_path / "a.npy") == expect
    with atomic_path(tmp_path / "d", directory=True) as tmp:
        (tmp / "x").write_text("x")
    assert _mode(tmp_path / "d") == (0o777 & ~mask)


def test_replaced_file_keeps_its_mode(tmp_path, umask):
    """--force used to turn a 0644 file into 0600."""
    umask(0o022)
    p = tmp_path / "a.txt"
    p.write_text("old")
    os.chmod(p, 0o640)
    with atomic_path(p) as tmp:
        tmp.write_text("new")
    assert p.read_text() == "new" and _mode(p) == 0o640


def test_all_or_nothing_when_a_writer_fails(tmp_path):
    (tmp_path / "a.txt").write_text("old a")
    with pytest.raises(RuntimeError):
        with atomic_paths([tmp_path / "a.txt", tmp_path / "b.txt"]) as (ta, tb):
            ta.write_text("new a")
            raise RuntimeError("preview failed")
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]
    assert (tmp_path / "a.txt").read_text() == "old a"


def test_rollback_when_a_rename_fails(tmp_path, monkeypatch):
    (tmp_path / "a.txt").write_text("old a")
    real = os.replace

    def flaky(src, dst):
        if str(dst).endswith("b.txt"):
            raise OSError("disk gone")
        return real(src, dst)

    monkeypatch.setattr(_atomic.os, "replace", flaky)
    with pytest.raises(OSError, match="disk gone"):
        with atomic_paths([tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "c.txt"]) as tmps:
            for t, text in zip(tmps, ("new a", "new b", "new c")):
                t.write_text(text)
    monkeypatch.setattr(_atomic.os, "replace", real)
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]
    assert (tmp_path / "a.txt").read_text() == "old a"


def test_directory_output_replaces_a_folder_as_a_whole(tmp_path):
    d = tmp_path / "series"
    d.mkdir()
    (d / "old.dcm").write_text("old")
    with atomic_path(d, directory=True) as tmp:
        (tmp / "new.dcm").write_text("new")
    assert sorted(os.listdir(d)) == ["new.dcm"]
    assert sorted(os.listdir(tmp_path)) == ["series"]


def _sigint_default():
    # a parent started in the background (CI runners, `cmd &`) may leave SIGINT ignored; a terminal does not
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _run_cli(args, **kw):
    return subprocess.Popen([sys.executable, "-m", "pdediff", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_sigint_default, **kw)


def test_signals_never_leave_partial_files(tmp_path):
    """Kill `pdediff denoise` with SIGINT/SIGTERM/SIGHUP at random moments: afterwards the folder holds the
    input and either nothing else or complete outputs; never a hidden temporary file."""
    vol = np.random.default_rng(0).random((40, 64, 64)).astype(np.float32)
    np.save(tmp_path / "in.npy", vol)
    expected = None
    # Reference run, which also times the whole command so that the kills land all over it.
    t0 = time.perf_counter()
    ref = _run_cli(["denoise", str(tmp_path / "in.npy"), "-o", str(tmp_path / "ref.npy"), "--quiet"])
    assert ref.wait(timeout=300) == 0, ref.stderr.read()
    duration = time.perf_counter() - t0
    expected = np.load(tmp_path / "ref.npy")
    os.unlink(tmp_path / "ref.npy")
    rnd = random.Random(1)
    outcomes = set()
    for trial in range(6):
        sig = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)[trial % 3]
        out, pv = tmp_path / "out.npy", tmp_path / "out.png"
        proc = _run_cli(["denoise", str(tmp_path / "in.npy"), "-o", str(out), "--preview", str(pv), "--quiet",
                         "--force"])
        time.sleep(rnd.uniform(0.4, 1.1) * duration)
        proc.send_signal(sig)
        rc = proc.wait(timeout=300)
        err = proc.stderr.read()
        left = sorted(os.listdir(tmp_path))
        assert all(not name.startswith(".") for name in left), (sig, left, err)
        if rc == 0:
            outcomes.add("finished")
        elif rc == -sig:
            # Killed while the interpreter was still importing, before pdediff installed its handlers:
            # nothing had been created yet (checked above and below).
            outcomes.add("killed during start-up")
        else:
            assert "Traceback" not in err, err
            assert rc == 128 + sig, (rc, err)
            assert len(err.strip().splitlines()) == 1 and "removed" in err, err
            outcomes.add("stopped")
        if out.exists():  # a complete result, never a partial one; the preview with it
            np.testing.assert_array_equal(np.load(out), expected)
            assert pv.exists() and pv.stat().st_size > 0
            os.unlink(out)
            os.unlink(pv)
        else:
            assert not pv.exists()
    assert "stopped" in outcomes


_INTERRUPT_MID_BUILD = r"""
import os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # a background parent may have left SIGINT ignored
from pdediff import cli

class HalfBuilt:  # like an llvmlite object whose finaliser fails when construction was interrupted
    def __del__(self):
        raise AttributeError("no _as_parameter_")

def denoise(args):
    obj = HalfBuilt()
    os.kill(os.getpid(), getattr(signal, sys.argv[1]))
    while True:
        pass

cli.denoise.run = denoise
sys.exit(cli.main(["denoise", "in.npy", "-o", "out.npy"]))
"""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_interrupt_prints_one_line_even_when_finalisers_fail(tmp_path, sig):
    """An interrupt that lands inside Numba's compiler leaves half-built llvmlite objects whose finalisers raise;
    the user must still see the one line, not "Exception ignored ... Traceback" (found by the kill loop in CI)."""
    proc = subprocess.run([sys.executable, "-c", _INTERRUPT_MID_BUILD, sig], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    signum = getattr(signal, sig)
    assert proc.returncode == 128 + signum, proc.stderr
    assert proc.stderr.count("\n") == 1 and "removed" in proc.stderr, proc.stderr


_INTERRUPT_DURING_IMPORT = r"""
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)

class Interrupting:  # a Ctrl-C that lands while the command modules (NumPy, the kernels) are being imported
    def find_spec(self, name, path=None, target=None):
        if name == "pdediff.cli._main":
            raise KeyboardInterrupt
        return None

from pdediff.cli import main  # what the console script runs: must not import anything heavy
assert "numpy" not in sys.modules and "numba" not in sys.modules, sorted(m for m in sys.modules if "num" in m)
sys.meta_path.insert(0, Interrupting())
sys.exit(main(["denoise", "in.npy", "-o", "out.npy"]))
"""


_TERM_DURING_IMPORT = r"""
import os, signal, sys

class Terminating:  # a SIGTERM/SIGHUP that lands while the command modules are being imported
    def find_spec(self, name, path=None, target=None):
        if name == "pdediff.cli._main":
            os.kill(os.getpid(), getattr(signal, sys.argv[1]))
        return None

from pdediff.cli import main
sys.meta_path.insert(0, Terminating())
sys.exit(main(["denoise", "in.npy", "-o", "out.npy"]))
"""


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_termination_while_the_package_loads_is_one_line(tmp_path, sig):
    """SIGTERM/SIGHUP in the first 0.3 s killed the process silently (status -15/-1): the stop handlers are now
    installed before anything heavy loads."""
    proc = subprocess.run([sys.executable, "-c", _TERM_DURING_IMPORT, sig], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 128 + getattr(signal, sig), proc.stderr
    assert proc.stderr == f"pdediff denoise: stopped by {sig} while starting; nothing was written\n"


def test_interrupt_while_the_package_loads_is_one_line(tmp_path):
    """Ctrl-C in the first second of ``pdediff ...`` (NumPy, Numba and the kernels loading) printed Python's
    KeyboardInterrupt traceback: the console script now imports nothing heavy before ``main`` catches it."""
    proc = subprocess.run([sys.executable, "-c", _INTERRUPT_DURING_IMPORT], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == "pdediff denoise: interrupted while starting; nothing was written\n", proc.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("delay", [0.15, 0.3, 0.6, 1.0])
def test_ctrl_c_at_any_moment_of_the_start_is_one_line(tmp_path, delay):
    """A real SIGINT at several moments of a real start (imports, parsing, reading, compiling or loading kernels):
    never a traceback, status 130 (or death by the signal itself before Python installed its handler)."""
    import numpy as np

    np.save(tmp_path / "in.npy", np.random.default_rng(0).random((64, 64)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "pdediff", "denoise", "in.npy", "-o", "out.npy"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        proc.communicate(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert proc.returncode in (0, 130, -signal.SIGINT), err
    names = sorted(p.name for p in tmp_path.iterdir())
    if "out.npy" in names:  # committed before the signal (it may still land before the exit): complete
        assert np.load(tmp_path / "out.npy").shape == (64, 64)
        assert names == ["in.npy", "out.npy"]
    else:
        assert proc.returncode != 0 and err.count("\n") <= 1, err
        assert names == ["in.npy"]  # no output, no hidden temporary


def test_interrupt_wrapped_by_a_c_extension_is_still_one_line(monkeypatch, capsys):
    """A SIGTERM that lands inside a C extension's initialisation (CI saw matplotlib's ft2font) comes back as
    "ImportError: initialization failed" caused by the CLI's own exception: still one line, exit 143."""
    import signal as _signal

    import pdediff.cli as cli

    def run(args):
        try:
            raise cli._Terminated(_signal.SIGTERM)
        except cli._Terminated as exc:
            raise ImportError("initialization failed") from exc

    monkeypatch.setattr(cli.denoise, "run", run)
    assert cli.main(["denoise", "in.npy", "-o", "out.npy"]) == 128 + _signal.SIGTERM
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stopped by SIGTERM" in err[0]

    def other(args):
        raise ImportError("a genuine failure")

    monkeypatch.setattr(cli.denoise, "run", other)
    with pytest.raises(ImportError, match="genuine"):
        cli.main(["denoise", "in.npy", "-o", "out.npy"])
