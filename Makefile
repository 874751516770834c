# Two commands take a fresh clone to green: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
# torch (issue 5) is pinned here: a CPU wheel of exactly this version is on the machines' disk.
TORCH  := torch==2.13.0

.PHONY: demo test docs bench clean venv

$(PY):
	$(PYTHON) -m venv $(VENV)

venv: $(PY)

demo: $(PY)
	$(PIP) install -e ".[demo]"
	$(VENV)/bin/pdediff demo

test: $(PY)
	$(PIP) install -e ".[dev]"
	$(PY) -m pytest -n 2 --dist loadfile

docs: $(PY)
	$(PIP) install -e ".[docs,torch]" "$(TORCH)"
	$(PY) -m sphinx -W --keep-going -b html -q docs docs/_build/html

bench: $(PY)
	$(PIP) install -e ".[dev,bench]"
	$(PY) -m pytest benchmarks --benchmark-only --benchmark-columns=median,iqr,rounds -p no:xdist

clean:
	rm -rf $(VENV) docs/_build pdediff-output .pytest_cache .benchmarks
