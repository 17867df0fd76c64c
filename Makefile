# The two commands of the quick start are `make run` and `make test`; the rest are conveniences.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# the optional spark extra (make spark)
SPARK_INSTALLED := $(VENV)/.spark-installed
RAW_DATA_DIR ?=
PORT ?= 8000

.PHONY: run test test-fast serve dsn psql pgadmin stop docs docs-serve lint bench sample clean spark spark-demo

$(INSTALLED): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing the pinned dependencies into $(VENV) (a few minutes the first time; pip says what it does)"
	$(BIN)/pip install --disable-pip-version-check --progress-bar off --editable '.[dev]'
	# plain `dbt ...` after `source .venv/bin/activate` finds the project's profile
	grep -q DBT_PROFILES_DIR $(BIN)/activate || echo 'export DBT_PROFILES_DIR="$(CURDIR)/profiles"' >> $(BIN)/activate
	# ... and the embedded server owner's password, which the server's start writes there (unless you chose a file)
	grep -q PGPASSFILE $(BIN)/activate || echo 'test -n "$$PGPASSFILE" || export PGPASSFILE="$(CURDIR)/.secrets/pgpass"' >> $(BIN)/activate
	# plain dbt reads .exports/live, the export of the live warehouse; the sample until the first refresh
	mkdir -p .exports && { test -e .exports/live || ln -sfn ../seeds/netflix .exports/live; }
	touch $@

run: $(INSTALLED)  ## load the raw export (RAW_DATA_DIR=folder, or the sample), dbt build, summary
	$(BIN)/python -m recommender run $(if $(RAW_DATA_DIR),--raw-data-dir "$(RAW_DATA_DIR)")

test: $(INSTALLED)  ## the whole test suite (each server's tests in a worker of their own, side by side)
	$(BIN)/python -m pytest -n 2 --dist loadgroup

test-fast: $(INSTALLED)  ## the tests that need no database (the edit-test loop)
	$(BIN)/python -m pytest -m "not database"

serve: $(INSTALLED)  ## start the HTTP API on the warehouse (PORT=8000; docs at /docs)
	$(BIN)/python -m recommender serve --port $(PORT)

dsn: $(INSTALLED)  ## print a libpq URI of the warehouse
	@$(BIN)/python -m recommender dsn

psql: $(INSTALLED)  ## open psql on the warehouse
	$(BIN)/python -m recommender psql

pgadmin: $(INSTALLED)  ## write target/pgadmin-servers.json for the warehouse (make run writes it too)
	$(BIN)/python -m recommender pgadmin

stop: $(INSTALLED)  ## stop the embedded PostgreSQL
	$(BIN)/python -m recommender server stop

docs: $(INSTALLED)  ## build the dbt docs site (the data dictionary) into target/
	$(BIN)/python -m recommender docs

docs-serve: $(INSTALLED)  ## build the data dictionary and serve it at http://127.0.0.1:8080/
	$(BIN)/python -m recommender docs --serve

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/sqlfluff lint --processes 0 models macros tests analyses recommender

bench: $(INSTALLED)  ## seed, activity, ML-100k accuracy, ALS fit, publish and API speed, API memory (each prints its baseline)
	$(BIN)/python bench/seed_speed.py $(if $(RAW_DATA_DIR),--raw-data-dir "$(RAW_DATA_DIR)")
	$(BIN)/python bench/refresh_speed.py $(if $(RAW_DATA_DIR),--raw-data-dir "$(RAW_DATA_DIR)")
	$(BIN)/python bench/activity_speed.py
	$(BIN)/python bench/movielens_benchmark.py
	$(BIN)/python bench/als_speed.py
	$(BIN)/python bench/publish_speed.py
	$(BIN)/python bench/api_speed.py  # needs wrk: apt-get install wrk
	$(BIN)/python bench/api_memory.py

$(SPARK_INSTALLED): $(INSTALLED)
	$(BIN)/pip install --disable-pip-version-check --progress-bar off --editable '.[dev,spark]'
	touch $@

spark: $(SPARK_INSTALLED)  ## install the optional Spark engine (dbt-spark, pyspark; needs Java 17+) into .venv

spark-demo: $(SPARK_INSTALLED)  ## the activity models on Spark from the warehouse's events, Spark ALS, a published run
	$(BIN)/python -m recommender spark demo

sample: $(INSTALLED)  ## regenerate the committed sample export and the ISO 3166 reference seed
	$(BIN)/python -m recommender sample

clean:
	rm -rf target logs
