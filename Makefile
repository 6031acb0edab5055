# pdp: every target sets up its own virtualenv first, so a fresh machine needs only `make`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LISTEN ?= 127.0.0.1:9191
PROTO := protos/pdp/v1/authorizer.proto

.PHONY: install run test test-deps lint format proto check bench bench-peers clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/pdp serve policies --listen $(LISTEN)

test: install test-deps
	$(PY) -m pytest -q -n 2 --dist loadgroup

# PostgreSQL for the query plan tests: Debian's package, installed when missing. The tests
# start their own server on a temporary directory and port (tests/support/postgres.py); a
# cluster the package's install may have started is stopped again, never used.
POSTGRES_INSTALL = ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { \
	{ apt-get install -y -qq postgresql || { apt-get update -qq && apt-get install -y -qq postgresql; }; } \
	&& { pg_lsclusters --no-header 2>/dev/null | awk '$$4 == "online" {print $$1, $$2}' \
	| while read version cluster; do pg_ctlcluster "$$version" "$$cluster" stop; done; }; }

test-deps:
	@$(POSTGRES_INSTALL)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

proto: install
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=. --pyi_out=. --grpc_python_out=. $(PROTO)

check: install
	$(VENV)/bin/pdp check policies

# Benchmarks (README "Benchmarks"): one table, bench/results/latest.json; bounded (~6 min).
# h2load is Debian's nghttp2-client; bench-peers also installs Cerbos from npm into bench/.peers.
H2LOAD_INSTALL = command -v h2load >/dev/null || apt-get install -y -qq nghttp2-client \
	|| { apt-get update -qq && apt-get install -y -qq nghttp2-client; }

bench: install
	@$(H2LOAD_INSTALL)
	BENCH_PEERS=$(BENCH_PEERS) $(PY) -m bench.run

bench-peers: install
	@$(H2LOAD_INSTALL)
	BENCH_PEERS=1 $(PY) -m bench.run

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
