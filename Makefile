# Two commands do everything on a fresh Debian machine with Python 3.11:
#   make demo   install what is missing, record a simulated centre, write a disc image, then
#               serve that centre (cameras still live) with a one-time login until Ctrl-C
#               (from a terminal; with stdin not a terminal it stops after the disc)
#   make test   install what is missing, run lint, type checks, the import contract and the tests
# and one gives quick feedback while working:
#   make check  the same checks, with only the tests not marked integration, browser or faults
#               (the fast tier, tests/README.md): about a minute on two cores
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: deps demo check test faults lint format-check typecheck contracts clean

$(STAMP): pyproject.toml scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

deps: $(STAMP)

demo: deps
	$(BIN)/vaudit demo --config examples/centre.toml

SOURCES := domain pipeline recorders indexer exporter tests bench

lint: deps
	$(BIN)/ruff check $(SOURCES)

# The tree is formatted by ruff (`ruff format $(SOURCES)`); check and test fail on any file that is not.
format-check: deps
	$(BIN)/ruff format --check $(SOURCES)

typecheck: deps
	$(BIN)/mypy

contracts: deps
	$(BIN)/lint-imports

# Three workers (pytest-xdist) on two cores: most integration tests wait on real cameras, servers
# and browsers in real time, so a third worker fills the cores' idle time (788 tests: 16.1 min with
# two workers, 12.1 min with three, on the 2-core build machine); `make test PYTEST_WORKERS=0` runs
# the suite in one process.
PYTEST_WORKERS ?= 3
test: lint format-check typecheck contracts
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist worksteal

# The fast tier: the tests that start no server, camera or browser, need no PostgreSQL and take
# under 2 s each (pyproject.toml [tool.pytest.ini_options] markers; tests/README.md).
FAST_TESTS := not integration and not browser and not faults
check: lint format-check typecheck contracts
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist worksteal -m "$(FAST_TESTS)"

# The fault suite alone (it also runs in `make test`): docs/design/recorder.md "Faults".
faults: deps
	$(BIN)/pytest -q -m faults tests/faults --durations=0

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
