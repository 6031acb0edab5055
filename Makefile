# pdp: every target sets up its own virtualenv first, so a fresh machine needs only `make`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LISTEN ?= 127.0.0.1:9191
DEV ?= .dev
SUB ?= 42
PROTO := protos/pdp/v1/authorizer.proto

.PHONY: install run test test-fast test-deps lint format proto check image k8s-bundles bench bench-http bench-peers clean dev-bundle run-dev dev-token

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/pdp serve policies --listen $(LISTEN)

# Development only (README "Quick start", docs/gateway.md): $(DEV)/ is git-ignored and holds a
# fresh ES256 key (mode 0600, kept across runs) and $(DEV)/bundle, a copy of policies/ trusting
# only that key.
dev-bundle: install
	$(VENV)/bin/pdp dev-bundle policies --out $(DEV)

run-dev: dev-bundle
	$(VENV)/bin/pdp serve $(DEV)/bundle --listen $(LISTEN)

# `make -s dev-token SUB=42` prints only the token: User 42, valid for one hour.
dev-token: install
	@test -f $(DEV)/dev-es256.pem || { echo "no $(DEV)/dev-es256.pem: run make dev-bundle first" >&2; exit 1; }
	@$(VENV)/bin/pdp token --key $(DEV)/dev-es256.pem --bundle $(DEV)/bundle --sub $(SUB)

# PYTHONDONTWRITEBYTECODE= : pytest caches its rewritten test modules (~7 s of collection
# per process otherwise) even where the environment turns bytecode off.
test: install test-deps
	PYTHONDONTWRITEBYTECODE= $(PY) -m pytest -q -n 2 --dist loadgroup

# The inner loop (< 30 s): the unit tests, without tests/e2e/ (not even collected) and the
# other tests marked `slow` (tests/conftest.py SLOW).
test-fast: install
	PYTHONDONTWRITEBYTECODE= $(PY) -m pytest -q -n 2 --dist loadgroup -m "not slow" --ignore=tests/e2e

# PostgreSQL for the query plan tests: Debian's package, installed when missing. The tests
# start their own server on a temporary directory and port (tests/support/postgres.py); a
# cluster the package's install may have started is stopped again, never used.
POSTGRES_INSTALL = ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { \
	{ apt-get install -y -qq postgresql || { apt-get update -qq && apt-get install -y -qq postgresql; }; } \
	&& { pg_lsclusters --no-header 2>/dev/null | awk '$$4 == "online" {print $$1, $$2}' \
	| while read version cluster; do pg_ctlcluster "$$version" "$$cluster" stop; done; }; }

# nginx for the forward-auth tests (tests/support/nginx.py runs the binary itself, on free
# loopback ports): Debian's package, installed when missing; a service its install starts is
# stopped again, never used.
NGINX_INSTALL = command -v nginx >/dev/null || test -x /usr/sbin/nginx || { \
	{ apt-get install -y -qq nginx || { apt-get update -qq && apt-get install -y -qq nginx; }; } \
	&& { test ! -s /run/nginx.pid || kill "$$(cat /run/nginx.pid)" || true; }; }

# redis-server for the protection state tests (tests/support/redis.py runs the binary itself,
# on a free loopback port): Debian's package, installed when missing; a service its install
# starts is stopped again, never used.
REDIS_INSTALL = command -v redis-server >/dev/null || { \
	{ apt-get install -y -qq redis-server || { apt-get update -qq && apt-get install -y -qq redis-server; }; } \
	&& { test ! -s /run/redis/redis-server.pid || kill "$$(cat /run/redis/redis-server.pid)" || true; }; }

test-deps:
	@$(POSTGRES_INSTALL)
	@$(NGINX_INSTALL)
	@$(REDIS_INSTALL)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

proto: install
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=. --pyi_out=. --grpc_python_out=. $(PROTO)

check: install
	$(VENV)/bin/pdp check policies

# The container image (Dockerfile, docs/deploy.md) with docker, podman or buildah, whichever
# works here; IMAGE=name:tag, BUILDER=podman, BUILD_FLAGS="..." override (deploy/image/build.sh).
image:
	deploy/image/build.sh

# The example bundle as the ConfigMaps of deploy/kubernetes (a test fails when they are stale).
k8s-bundles: install
	$(PY) deploy/kubernetes/bundle_configmap.py policies --name orders-policy --namespace shop \
		> deploy/kubernetes/sidecar/bundle.yaml
	$(PY) deploy/kubernetes/bundle_configmap.py policies --name orders-policy --namespace pdp \
		> deploy/kubernetes/gateway/bundle.yaml
	$(PY) deploy/kubernetes/bundle_configmap.py policies \
		--write-items deploy/kubernetes/sidecar/deployment.yaml \
		--write-items deploy/kubernetes/gateway/pdp.yaml

# Benchmarks (bench/README.md): one table, bench/results/latest.json; bounded (~7.5 min).
# h2load is Debian's nghttp2-client; bench-peers also installs Cerbos from npm into bench/.peers.
H2LOAD_INSTALL = command -v h2load >/dev/null || apt-get install -y -qq nghttp2-client \
	|| { apt-get update -qq && apt-get install -y -qq nghttp2-client; }

bench: install
	@$(H2LOAD_INSTALL)
	@$(REDIS_INSTALL)
	BENCH_PEERS=$(BENCH_PEERS) $(PY) -m bench.run

# HTTP server candidates for --http-listen, measured with wrk (README "Benchmarks").
WRK_INSTALL = command -v wrk >/dev/null || apt-get install -y -qq wrk \
	|| { apt-get update -qq && apt-get install -y -qq wrk; }

bench-http: install
	@$(WRK_INSTALL)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m bench.http

bench-peers: install
	@$(H2LOAD_INSTALL)
	BENCH_PEERS=1 $(PY) -m bench.run

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
