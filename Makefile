# skewless: `make demo` runs the main job end to end; `make test` runs every check CI runs.
.DEFAULT_GOAL := help
SHELL := /bin/bash
CARGO ?= cargo
SKEWLESS := target/debug/skewless
DEMO_DATA := data/demo

.PHONY: help build demo test unit lint fmt golden redis clean-demo bench bench-offline bench-online bench-server bench-push bench-aggregations bench-feast bench-python parity-soak test-feast test-python wheel

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

build: ## Build the skewless binary and the Python package's extension (debug)
	$(CARGO) build -p skewless-cli -p skewless-python

demo: build ## Run the main job end to end on the embedded default (nothing to install)
	$(SKEWLESS) demo-data --out $(DEMO_DATA)
	$(SKEWLESS) validate
	$(SKEWLESS) validate --data
	$(SKEWLESS) plan
	$(SKEWLESS) apply
	$(SKEWLESS) list entities
	$(SKEWLESS) list views
	$(SKEWLESS) list features
	$(SKEWLESS) list services
	$(SKEWLESS) registry log
	$(SKEWLESS) training-set --spine $(DEMO_DATA)/ride_requests_spine.parquet --service ranking_v1 \
		--out $(DEMO_DATA)/training_set.parquet
	$(SKEWLESS) profile $(DEMO_DATA)/training_set.parquet.manifest.json
	$(SKEWLESS) materialize --end 2026-11-15T00:00:00Z
	$(SKEWLESS) materialize-incremental --end 2026-11-15T06:00:00Z
	$(SKEWLESS) get --features driver_hourly_stats:conv_rate,driver_hourly_stats:trips_per_hour,driver_last_trip:last_trip_fare,customer_profile:tier \
		--entity driver_id=1001,customer_id=5001 --entity driver_id=1099,customer_id=5200 --at 2026-11-15T06:00:00Z
	$(SKEWLESS) get --service ranking_v1 --entity driver_id=1001,customer_id=5001,distance_km=3.2 --at 2026-11-15T06:00:00Z
	@scripts/demo-serve.sh $(SKEWLESS)
	$(SKEWLESS) check --manifest $(DEMO_DATA)/training_set.parquet.manifest.json
	$(SKEWLESS) parity --spine $(DEMO_DATA)/ride_requests_spine.parquet --service ranking_v1 --sample 500 \
		--at 2026-11-05T07:30:00Z --at 2026-11-15T06:00:00Z
	@scripts/demo-python.sh

test: redis lint unit test-python test-feast ## Everything CI runs: fmt, clippy, all tests, the Python package's tests, Feast's SDK against the server (installs redis-server, Feast and the Python test packages if missing)

unit: ## Run doc tests, then all tests (nextest when installed)
	$(CARGO) test --workspace --doc
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

golden: ## Regenerate the golden error outputs, then review `git diff`
	UPDATE_GOLDEN=1 $(CARGO) test -p skewless-defs --test it golden
	UPDATE_GOLDEN=1 $(CARGO) test -p skewless --test it golden

test-python: ## The Python package: the workspace's debug extension in python/.venv's package, pytest against the CLI
	python/test.sh

wheel: ## The Python package as one abi3 wheel (CPython >= 3.9, release) in target/wheels
	@if [ ! -x python/.venv/bin/maturin ]; then python3 -m venv python/.venv && python/.venv/bin/pip install -q -r python/requirements-test.txt; fi
	cd python && .venv/bin/maturin build --release --out ../target/wheels

test-feast: ## Feast 0.67's own Python SDK (from PyPI, in a virtualenv) against `skewless serve`: export, apply, push, write, read, materialize, version gate (~1.5 min)
	interop/feast/check.sh


parity-soak: ## Parity over 100 fresh large random definitions and event logs until >= 10^6 values are compared (debug build; minutes)
	PARITY_CASES=$${PARITY_CASES:-0} PARITY_FRESH=$${PARITY_FRESH:-100} PARITY_SCALE=$${PARITY_SCALE:-300} PARITY_MIN_VALUES=1000000 \
		$(CARGO) test --workspace --test parity property -- --nocapture

bench: bench-offline bench-online bench-server bench-push bench-push-memory bench-aggregations bench-feast bench-python ## All benchmarks (release build; never part of CI)

bench-python: ## The M training set from Python (release wheel) vs the CLI and Feast's duckdb offline store
	benches/python/run.sh

bench-feast: ## Feast's SDK training sets through skewless (Flight) vs Feast's own offline store, at S
	benches/feast/run.sh

bench-offline: ## Training sets at S and M: skewless vs DuckDB and Polars, figures beside targets
	benches/offline/run.sh

bench-online: redis ## Online writes and lookups on a real Redis, beside redis-benchmark (release)
	$(CARGO) bench -p skewless-online --bench online

bench-server: redis ## The feature server under closed-loop load beside redis-benchmark MGET (release)
	benches/server/run.sh

bench-push: redis ## Pushes (one row at c16, 1000-row batches) and materialize of 1M keys, beside redis-benchmark (release)
	benches/push/run.sh

bench-push-memory: ## Resident memory of the server around four concurrent 34 MiB pushes: idle, peak, after (release)
	benches/push/memory.sh

bench-aggregations: redis ## 3 windows x 4 aggregates over M beside DuckDB window functions; tile memory, lookups and pushes on Redis (release)
	benches/aggregations/run.sh

redis: ## Make sure redis-server is installed (apt-get when root); never starts one
	@scripts/ensure-redis.sh

clean-demo: ## Remove the demo data and the local registry
	rm -rf $(DEMO_DATA) .skewless
