"""Sphinx configuration for pdediff (``make docs`` builds with warnings as errors)."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "pdediff"
author = "pdediff developers"
copyright = "2026, pdediff developers"
from pdediff import __version__ as release  # noqa: E402

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax", "sphinx.ext.autosummary"]
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"
autosummary_generate = False
# Fragments pulled into study.rst by ".. include::" (tables generated from the study's results.md).
exclude_patterns = ["_build", "study_results.rst", "study/*.rst", "restoration/*.rst"]
html_theme = "alabaster"
nitpicky = False
