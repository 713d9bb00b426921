# ciclo: every target sets up what it needs (virtualenv, Go-built tools) when missing.
SHELL := bash
.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python
export CICLO_CACHE ?= $(HOME)/.cache/ciclo
export PYTHONPATH := $(CURDIR)/tools
PYTEST_ARGS ?=

.PHONY: help venv tools node-tools lint typecheck imports check crds test test-unit cluster-up cluster-down demo demo-down bench-serving dist image lua redis

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@echo "[venv] installing ciclo and its dependencies into $(VENV)"
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed ## the Python virtualenv with ciclo and its dev dependencies

tools: ## build the pinned control-plane tools into $CICLO_CACHE/bin (once per pin)
	@bash tools/build.sh

node-tools: ## also build kubelet, kube-proxy and CoreDNS, the local cluster's real node (docs/real-node.md)
	@bash tools/build.sh node coredns

lint: venv ## ruff
	$(VENV)/bin/ruff check operator tools tests benchmarks
	$(VENV)/bin/ruff format --check operator tools tests benchmarks

typecheck: venv ## mypy --strict
	$(VENV)/bin/mypy

imports: venv ## the import-linter contracts
	$(VENV)/bin/lint-imports

check: lint typecheck imports ## every static check

crds: venv ## generate crds/ (and the chart's copy) from the pydantic types in ciclo.api
	$(PY) -m ciclo.api.crd crds charts/ciclo/crds

dist: tools ## dist/install.yaml: the chart rendered with its defaults, for kubectl apply
	bash dist/generate.sh > dist/install.yaml

image: venv ## the Dockerfile built with buildah on a debootstrap base, no registry (rebuilt when its inputs change)
	$(PY) -m localcluster.image

lua: ## Lua 5.1 (Debian's lua5.1), which runs the Argo CD health checks' tests
	@command -v lua5.1 >/dev/null || { apt-get update -q && apt-get install -y -q lua5.1; }

redis: ## Debian's redis-server (bookworm has no valkey): the shared prediction store's tests and the local cluster's store
	@command -v redis-server >/dev/null || command -v valkey-server >/dev/null || { apt-get update -q && apt-get install -y -q redis-server; }

test-unit: venv lua redis ## the fast tests: no Go, no cluster, no NannyML, no image build
	$(PY) -m pytest -m "not integration and not e2e and not nannyml and not image and not realnode" $(PYTEST_ARGS)

REALNODE_TESTS := tests/integration/test_real_node.py tests/integration/test_real_node_serving.py

test: venv tools node-tools image lua redis check ## the static checks, every test on a local cluster started for the run, then the real node's own (with PYTEST_ARGS: only those)
	$(PY) -m pytest $(PYTEST_ARGS)
	$(if $(PYTEST_ARGS),,$(PY) -m pytest -m realnode $(REALNODE_TESTS))

cluster-up: venv tools node-tools image redis ## start the local cluster with its real node (prints its KUBECONFIG)
	$(PY) -m localcluster up

cluster-down: venv ## remove the local cluster
	$(PY) -m localcluster down

demo: venv tools node-tools image redis ## the whole model lifecycle on the local cluster (or on yours: CICLO_USE_EXISTING_CLUSTER=1 KUBECONFIG=...)
	$(PY) -m demo run

demo-down: venv ## remove the demo: the local cluster, its Prometheus and operator
	$(PY) -m demo down

bench-serving: venv ## ciclo serve against MLServer and KServe (own venvs in $CICLO_CACHE/bench; about 25 min)
	$(PY) benchmarks/serving.py
