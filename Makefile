# Two commands take a fresh clone to green: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
# torch (issue 5) is pinned here: a CPU wheel of exactly this version is on the machines' disk.
TORCH  := torch==2.13.0

.PHONY: demo test docs bench bench-save bench-compare clean venv

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

# Regression checks (docs/benchmarks.rst, "Comparing with a baseline").
# `make bench-save` keeps this suite's results (.benchmarks/<machine>/NNNN_$(NAME).json); `make bench-compare`
# runs the suite again and fails on a median more than 10 % slower than the last saved run (pytest-benchmark's
# own comparison); `make bench-compare REV=<rev>` instead times this tree against git revision REV in
# alternating processes (`pdediff bench --compare REV`, ROUNDS per version) and writes bench-compare/.
NAME   ?= baseline
ROUNDS ?= 5
BENCH_PYTEST := $(PY) -m pytest benchmarks --benchmark-only --benchmark-columns=median,iqr,rounds -p no:xdist

bench-save: $(PY)
	$(PIP) install -e ".[dev,bench]"
	$(BENCH_PYTEST) --benchmark-save=$(NAME)

bench-compare: $(PY)
	$(PIP) install -e ".[dev,bench]"
ifdef REV
	$(VENV)/bin/pdediff bench --compare "$(REV)" --rounds $(ROUNDS) --out bench-compare
else
	$(BENCH_PYTEST) --benchmark-compare --benchmark-compare-fail=median:10%
endif

clean:
	rm -rf $(VENV) docs/_build pdediff-output .pytest_cache .benchmarks bench-compare
