# Two commands on a fresh machine: `make demo` and `make test` (each sets up .venv first).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: venv demo test test-fast lint bench clean constraints

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,all]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m exhunt.demo demo/evidence
	$(PY) -m exhunt scan demo/evidence --host EXCH01 --out demo/case --quiet; test $$? -le 1

test: $(STAMP)
	$(PY) -m pytest -n 2 -p no:randomly
	$(PY) -m ruff check exhunt tests tools bench
	$(PY) -m mypy

test-fast: $(STAMP)
	$(PY) -m pytest -n 2 -m "not slow and not browser"

lint: $(STAMP)
	$(PY) -m ruff check exhunt tests tools bench
	$(PY) -m mypy

# every bench/bench_*.py (quick unless BENCH_FULL=1), then BENCHMARKS.md from bench/results/*.md
bench: $(STAMP)
	for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b $(if $(BENCH_FULL),,--quick) || exit 1; done
	$(PY) bench/gather.py

constraints:
	$(PY) -m pip freeze --exclude-editable | grep -v '^-e' > constraints.txt

clean:
	rm -rf $(VENV) demo build *.egg-info
