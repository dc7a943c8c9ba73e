# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Spark (pyspark, ~1 GB with its jars) is an optional extra: `make test` installs it
# to run the Spark tests; `make demo` does not need it.
SPARK_STAMP := $(VENV)/.spark-installed-stamp
export DAGSTER_HOME := $(CURDIR)/data/dagster_home

.PHONY: setup setup-spark demo test lint dev bench soak clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup-spark: $(SPARK_STAMP)

# Rebuilt after the base install (a changed pyproject.toml), so the two stay in step.
$(SPARK_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	@touch $(SPARK_STAMP)

demo: setup
	$(BIN)/segments demo

lint: setup
	$(BIN)/ruff check pipelines tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy pipelines

test: setup-spark lint
	$(BIN)/pytest -n 2 --dist loadfile

dev: setup
	@mkdir -p $(DAGSTER_HOME) && cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000 -m pipelines.definitions

# A simulated month of hourly and nightly runs (tests/sim/), checked after every run:
# make soak [SEEDS=3] [ENGINE=duckdb|polars|spark] [RUNS=60]
soak: setup-spark
	SEGMENTS_SOAK_RUNS=$(or $(RUNS),60) SEGMENTS_SOAK_SEEDS=$(or $(SEEDS),3) SEGMENTS_SOAK_ENGINE=$(or $(ENGINE),duckdb) \
		$(BIN)/pytest -p no:cacheprovider -n 2 tests/test_operations_sim.py -k soak

# make bench [SIZES="1M 10M"] [SIZE=1M]: the whole command (first, hourly, full, no-op runs
# against the naive script) at every size in SIZES, one report; then the evaluation step at SIZE.
bench: setup
	$(BIN)/python bench/whole_run.py --size $(or $(SIZES),1M 10M)
	$(BIN)/python bench/run.py --size $(or $(SIZE),1M)

clean:
	rm -rf data/work data/published data/lake data/archive data/rejected data/warehouse.duckdb
