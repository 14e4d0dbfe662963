# Tessera — the two commands that matter: `make run` and `make test`.
# One cargo profile (release) serves run, test and bench, so RocksDB is
# compiled once; `--all-targets` keeps the feature set identical for every
# invocation, so nothing is rebuilt between them.

CARGO ?= cargo
CARGO_FLAGS := --release --workspace --all-targets

.PHONY: run test build setup rust frontend test-rust test-frontend test-api-fuzz test-chaos chaos-long bench bench-quick lint fmt clean-data

run: build
	./scripts/cluster.sh

test: build test-rust test-frontend test-api-fuzz test-chaos
	python3 bench/bench.py --quick   # smoke test of the benchmark; no timing is asserted

# The short chaos run: 150 s, every nemesis, then heal and check (docs/chaos.md).
test-chaos:
	./target/release/tessera-jepsen --time-limit 150 --seed 42 --out target/jepsen/short

# Long chaos run: 30 minutes cycling through every nemesis. The seed fixes
# the workload and the fault schedule: `make chaos-long SEED=n` for another.
SEED ?= 2027
chaos-long: build
	./target/release/tessera-jepsen --time-limit 1800 --seed $(SEED) --out target/jepsen/long

# schemathesis against /api/openapi.json on a real cluster, for a bounded time.
test-api-fuzz:
	python3 scripts/fuzz_api.py --seconds 60

# Full benchmark (under 10 minutes) and a quick one (under 2); figures in target/bench/results.json.
bench: build
	python3 bench/bench.py

bench-quick: build
	python3 bench/bench.py --quick

build: setup rust frontend

setup:
	./scripts/setup.sh

rust:
	$(CARGO) build $(CARGO_FLAGS)

frontend:
	@if [ -f frontend/package.json ]; then cd frontend && npm run build; fi

test-rust:
	$(CARGO) test $(CARGO_FLAGS) -- --test-threads=2

test-frontend:
	@if [ -f frontend/package.json ]; then cd frontend && npm test && npm run e2e; fi

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy $(CARGO_FLAGS) -- -D warnings

fmt:
	$(CARGO) fmt --all

clean-data:
	rm -rf data
