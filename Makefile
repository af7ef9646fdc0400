# vmclock operator: every set-up step lives here so a fresh machine needs only `make dev` or `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONTROLPLANE := tests/controlplane/controlplane
# The oldest Kubernetes the README claims; `make compat` proves the claim (README, "Compatibility").
COMPAT_K8S_VERSION := v1.34.4
COMPAT_TESTS := tests/controlplane/test_kubectl_wait.py tests/integration/test_controlplane.py tests/integration/test_crds.py \
	tests/controlplane/test_controller_manager.py \
	$(wildcard tests/integration/test_e2e_*.py)
STAMP := $(VENV)/.installed
# `make test` runs every target below in one make with 8 jobs: the tests mostly wait (a warm run used 1.4 of
# 2 cores), so lint, mypy, the unit tests, the integration tests and the compat tests all run together, each
# starting as soon as what it needs is built.  On a cold machine the three Go builds (control plane, the
# oldest Kubernetes, helm) are CPU-bound and each uses both cores, so BUILDS_IN_ORDER makes the second and
# third wait for the first instead of thrashing beside it; every build is a no-op once cached.  Measured on
# 2 cores: warm 8.9 min, cold 23.5 min (README, "Development").
TEST_TARGETS := prometheus controlplane lint typecheck unit integration compat
# pytest-xdist workers; each starts its own control plane, and a test module stays on one worker (loadfile,
# tests/harness/workers.py).  The tests mostly wait, so the runs share 2 cores with 2 + 4 + 3 workers.
TEST_WORKERS ?= 4
UNIT_WORKERS ?= 2
COMPAT_WORKERS ?= 3
PARALLEL := --dist loadfile --durations=15

.PHONY: help venv lock lint typecheck controlplane compat-controlplane helm prometheus unit integration \
	cluster-tests chart-tests test compat dev bench hadolint clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

venv: $(STAMP) ## create .venv with the operator and its dev tools (pinned by constraints.txt)

lock: ## re-pin constraints.txt from pyproject.toml, and the image's hashed requirements-{image,build}.txt
	rm -rf /tmp/vmclock-lock && $(PYTHON) -m venv /tmp/vmclock-lock
	/tmp/vmclock-lock/bin/pip install --quiet -e '.[dev]'
	{ echo "# Pinned versions of every dependency (runtime and dev), used by 'make venv'; the Dockerfile installs"; \
	  echo "# the same versions from requirements-image.txt (with hashes). Regenerate with 'make lock'."; \
	  /tmp/vmclock-lock/bin/pip freeze --exclude-editable; } > constraints.txt
	rm -rf /tmp/vmclock-lock-image && $(PYTHON) -m venv /tmp/vmclock-lock-image
	/tmp/vmclock-lock-image/bin/pip install --quiet -c constraints.txt .
	/tmp/vmclock-lock-image/bin/pip freeze --exclude vmclock-operator > /tmp/vmclock-lock-image/runtime.txt
	/tmp/vmclock-lock/bin/python tests/deploy/image_lock.py /tmp/vmclock-lock-image/runtime.txt

lint: $(STAMP) ## ruff
	$(BIN)/ruff check operator tests bench
	$(BIN)/ruff format --check operator tests bench

typecheck: $(STAMP) ## mypy (strict) on the package
	$(BIN)/mypy

controlplane: ## build kube-apiserver, kubectl, kube-controller-manager and etcd from Go modules into the cache (no-op when cached)
	$(CONTROLPLANE) build

helm: ## build helm from Go modules into the cache beside the control plane (no-op when cached)
	tests/helmbuild/helm build

prometheus: ## install the pinned Prometheus + promtool (Debian's package) into the cache (no-op when there)
	$(PYTHON) tests/promtools/install.py

compat-controlplane: ## the same for the oldest claimed Kubernetes
	$(CONTROLPLANE) build --kubernetes $(COMPAT_K8S_VERSION)

unit: $(STAMP) ## fast tests that need no control plane, on UNIT_WORKERS workers
	$(BIN)/pytest -m 'not integration' -q -ra -n $(UNIT_WORKERS)

integration: cluster-tests chart-tests ## every test that needs the control plane

cluster-tests: $(STAMP) controlplane prometheus ## the integration tests but the chart's, on TEST_WORKERS workers
	$(BIN)/pytest -m 'integration and not helm' -q -ra -n $(TEST_WORKERS) $(PARALLEL)

chart-tests: $(STAMP) controlplane helm ## the Helm chart's tests (marked `helm`: they use helm)
	$(BIN)/pytest -m helm -q -ra

test: $(STAMP) ## everything CI runs, in one make as described at TEST_TARGETS
	$(MAKE) --no-print-directory -j8 --output-sync=target BUILDS_IN_ORDER=1 $(TEST_TARGETS)

ifdef BUILDS_IN_ORDER
helm compat-controlplane: | controlplane
endif

compat: $(STAMP) compat-controlplane prometheus ## the CRD + e2e suites on the oldest claimed Kubernetes, on COMPAT_WORKERS
	K8S_VERSION=$(COMPAT_K8S_VERSION) $(BIN)/pytest -q -ra -n $(COMPAT_WORKERS) $(PARALLEL) $(COMPAT_TESTS)

dev: $(STAMP) controlplane ## local sandbox: control plane + ZStack simulator + operator + examples
	$(BIN)/python -m tests.sandbox $(SANDBOX_ARGS)

bench: $(STAMP) controlplane ## benchmarks under bench/ (numbers, not pass/fail)
	$(BIN)/python bench/bench_client.py
	$(BIN)/python bench/bench_operator.py
	$(BIN)/python bench/bench_selector.py
	$(BIN)/python bench/bench_connections.py
	$(BIN)/python bench/bench_reply_memory.py
	$(BIN)/python bench/bench_ownership.py

clean: ## remove the venv and caches (the control-plane cache outside the repo stays)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
