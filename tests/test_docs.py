"""Docs build without warnings, notebooks execute, docstring examples run."""

import doctest
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
DOCTEST_MODULES = ["pdediff.heat.solve", "pdediff.heat.explicit", "pdediff.heat.implicit",
                   "pdediff.heat.spectral", "pdediff.analytic", "pdediff.anisotropic.perona_malik", "pdediff.io._scan"]


@pytest.mark.parametrize("module", DOCTEST_MODULES + ["pdediff.torch.ops"])
def test_docstring_examples(module):
    if module.startswith("pdediff.torch"):
        pytest.importorskip("torch")
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_sphinx_builds_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q", str(ROOT / "docs"),
         str(tmp_path / "html")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    if "learned" in path.name or "style" in path.name:
        pytest.importorskip("torch")
    nb = nbformat.read(path, as_version=4)
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ["PDEDIFF_NOTEBOOK_STEPS"] = "30"  # a small training budget keeps the suite fast
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
