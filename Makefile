# `make run` and `make test` set up everything they need on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 3000
export PORT
# Where every process writes its Prometheus samples (executor_project/settings.py);
# wiped when the service or the suite starts, so counts start from zero.
METRICS_DIR := $(or $(PROMETHEUS_MULTIPROC_DIR),$(or $(VAR_DIR),var)/prometheus)

.PHONY: setup system-deps test-deps run web worker test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

# libseccomp is what the sandbox compiles its system-call filter with.
system-deps:
	@if ! ldconfig -p | grep -q 'libseccomp.so.2'; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q libseccomp2; \
	fi

# Headless Chromium, for the tests that look at pages (they skip without it).
test-deps:
	@if ! command -v chromium >/dev/null; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			chromium fonts-dejavu-core; \
	fi

setup: system-deps $(VENV)/.installed
	@mkdir -p var
	$(BIN)/python manage.py migrate --noinput -v 0
	$(BIN)/python manage.py collectstatic --noinput -v 0

# Web (gunicorn) and one django-q2 cluster per priority, until Ctrl-C stops them all.
run: setup
	rm -rf "$(METRICS_DIR)" && mkdir -p "$(METRICS_DIR)"
	$(BIN)/python manage.py seed_demo
	@# Each service runs in a session of its own, so Ctrl-C reaches only this
	@# shell, which then stops each one with a single SIGTERM (a second signal
	@# while a qcluster is stopping can leave it hanging).
	@pids=""; \
	trap 'trap - INT TERM EXIT; kill $$pids 2>/dev/null; wait' INT TERM EXIT; \
	setsid $(BIN)/gunicorn -c executor_project/gunicorn.conf.py executor_project.wsgi & pids="$$pids $$!"; \
	for cluster in executor-high executor-medium executor-low; do \
		Q_CLUSTER_NAME=$$cluster setsid $(BIN)/python manage.py qcluster & pids="$$pids $$!"; \
	done; \
	wait

test: setup test-deps
	rm -rf "$(METRICS_DIR)" && mkdir -p "$(METRICS_DIR)"
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/sandbox_overhead.py

clean:
	rm -rf $(VENV) var
