# `make run` and `make test` set up everything they need on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 3000
export PORT
# Where every process writes its Prometheus samples (executor_project/settings.py);
# wiped when the service or the suite starts, so counts start from zero.
METRICS_DIR := $(or $(PROMETHEUS_MULTIPROC_DIR),$(or $(VAR_DIR),var)/prometheus)

.PHONY: setup system-deps test-deps shared-packages run stop run-node web worker test test-scale bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

# libseccomp is what the sandbox compiles its system-call filter with;
# Node.js runs JavaScript plugins (and checks their syntax at upload).
system-deps:
	@if ! ldconfig -p | grep -q 'libseccomp.so.2'; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q libseccomp2; \
	fi
	@if ! command -v node >/dev/null; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs; \
	fi

# Headless Chromium, for the tests that look at pages (they skip without it).
test-deps:
	@if ! command -v chromium >/dev/null; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			chromium fonts-dejavu-core; \
	fi

# The operator's shared packages (deploy/shared-packages.txt) in a virtualenv
# of their own, which the sandbox mounts read-only for every run. Kept under
# the checkout's var/, not VAR_DIR: every service and test run of this
# checkout shares the one build. Binary wheels only, so no package's build
# script ever runs here; compiled to bytecode here, as runs cannot write it.
SHARED_PACKAGES := $(CURDIR)/var/shared-packages
$(SHARED_PACKAGES)/.installed: deploy/shared-packages.txt | $(BIN)/python
	rm -rf "$(SHARED_PACKAGES)"
	$(BIN)/python -m venv --without-pip "$(SHARED_PACKAGES)"
	$(BIN)/pip install -q --disable-pip-version-check --only-binary=:all: --target "$$($(SHARED_PACKAGES)/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
		-r deploy/shared-packages.txt
	touch $@
shared-packages: $(SHARED_PACKAGES)/.installed
# The service and the suite use it unless SANDBOX_SHARED_PACKAGES says
# otherwise (empty: no shared set, and nothing is built).
export SANDBOX_SHARED_PACKAGES ?= $(SHARED_PACKAGES)
SHARED_PACKAGES_BUILD := $(if $(filter $(SHARED_PACKAGES),$(SANDBOX_SHARED_PACKAGES)),$(SHARED_PACKAGES)/.installed)

setup: system-deps $(VENV)/.installed
	@mkdir -p var
	$(BIN)/python manage.py migrate --noinput -v 0
	$(BIN)/python manage.py collectstatic --noinput -v 0

# Web (gunicorn) and one django-q2 cluster per priority under supervisord,
# which restarts any of them that dies; one Ctrl-C or one SIGTERM to make
# stops everything, clusters draining their runs (docs/operations.md). make
# then ends with 130/143, as GNU make does after such a signal whatever its
# recipe's status; `make stop` (or a SIGTERM to supervisord) ends it with 0.
SERVICE_VAR_DIR := $(abspath $(or $(VAR_DIR),var))
SHUTDOWN_GRACE_SECONDS ?= 30
run: setup $(SHARED_PACKAGES_BUILD)
	rm -rf "$(METRICS_DIR)" && mkdir -p "$(METRICS_DIR)"
	$(BIN)/python manage.py seed_demo
	@mkdir -p "$(SERVICE_VAR_DIR)/run" "$(SERVICE_VAR_DIR)/log"
	SERVICE_ROOT="$(CURDIR)" SERVICE_BIN="$(abspath $(BIN))" VAR_DIR="$(SERVICE_VAR_DIR)" \
	SHUTDOWN_GRACE_SECONDS=$(SHUTDOWN_GRACE_SECONDS) \
	CLUSTER_STOP_WAIT_SECONDS=$$(( $(SHUTDOWN_GRACE_SECONDS) + 15 )) WEB_STOP_WAIT_SECONDS=45 \
	exec $(BIN)/supervisord -c deploy/supervisord.conf

# Stops the `make run` of this VAR_DIR as one Ctrl-C does (the same ordered
# drain), from another terminal or a script; that `make run` then exits 0.
stop:
	VAR_DIR="$(SERVICE_VAR_DIR)" $(BIN)/supervisorctl -c deploy/supervisord.conf shutdown

# Another node of a deployment on this machine: `make run` on a VAR_DIR of its
# own (var/nodes/NODE) and PORT, sharing DATABASE_URL (PostgreSQL),
# REDIS_URL and SECRET_KEY with the other nodes (docs/operations.md#several-nodes).
# exec: make forwards a SIGTERM to its child only, which must be the node's make.
NODE ?= b
run-node:
	@case "$$DATABASE_URL" in postgres*) ;; *) echo "run-node: set DATABASE_URL=postgres://… (with REDIS_URL and SECRET_KEY), the same for every node" >&2; exit 2;; esac
	@[ -n "$$SECRET_KEY" ] && [ -n "$$PORT" ] || { echo "run-node: set SECRET_KEY (the same for every node) and PORT (free on this machine)" >&2; exit 2; }
	VAR_DIR="$(CURDIR)/var/nodes/$(NODE)" exec $(MAKE) --no-print-directory run

test: setup test-deps $(SHARED_PACKAGES_BUILD)
	rm -rf "$(METRICS_DIR)" && mkdir -p "$(METRICS_DIR)"
	$(BIN)/python -m pytest -q

# The same suite on PostgreSQL and Redis, as several nodes share them: private
# servers started for it and removed after (deploy/ci/with-private-servers.sh).
test-scale: setup test-deps $(SHARED_PACKAGES_BUILD)
	rm -rf "$(METRICS_DIR)" && mkdir -p "$(METRICS_DIR)"
	deploy/ci/with-private-servers.sh $(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/sandbox_overhead.py

clean:
	rm -rf $(VENV) var
