# Two commands on a fresh machine: `make run` and `make test`.
# Everything is installed from the package registries into this folder.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?= -n 2 --dist loadfile
# The console's browser tests drive Debian's Chromium (never a browser Playwright downloads).
CHROMIUM := /usr/bin/chromium
BROWSER_PACKAGES := chromium fonts-wqy-zenhei
# promtool and amtool check the alert rules, their unit tests and the Alertmanager config.
PROM_TOOLS := $(TOOLS)/prometheus

.PHONY: install java kafka run test lint typecheck imports browser promtool bench clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

# Apache Kafka runs on the machine's Java from Maven Central jars (infra/kafka/pom.xml), cached in
# .tools/kafka-<version>. Java 17 and Maven come with the machine; as root without them, apt installs them.
java:
	@if command -v java >/dev/null && command -v mvn >/dev/null; then \
	  true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Java 17 and Maven for the Apache Kafka broker"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless maven >/dev/null; \
	else \
	  echo "Apache Kafka needs Java 17+ and Maven: apt-get install openjdk-17-jre-headless maven" >&2; exit 1; \
	fi

kafka: $(VENV)/.synced java
	$(PY) -m libs.devstack.kafka_dist

install: $(VENV)/.synced kafka

run: install
	$(PY) -m libs.devstack.run

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

imports: install
	$(VENV)/bin/lint-imports

# Installs Chromium (and a CJK font, so screenshots show the customers' names) with apt when
# running as root; anywhere else the browser tests skip and say why.
browser:
	@if [ -x $(CHROMIUM) ]; then \
	  true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing $(BROWSER_PACKAGES) for the console's browser tests"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  { apt-get update -qq && apt-get install -y -qq --no-install-recommends $(BROWSER_PACKAGES) >/dev/null; } \
	    || echo "could not install $(BROWSER_PACKAGES): the browser tests will skip"; \
	else \
	  echo "no $(CHROMIUM) and no apt-get as root: the browser tests will skip (apt-get install chromium)"; \
	fi

# promtool and amtool from Debian's prometheus and prometheus-alertmanager packages: apt fetches the
# two packages and only the two tools are unpacked into .tools/prometheus (no Prometheus or
# Alertmanager server is installed, nothing starts). On PATH already: nothing to do. Without apt the
# alert-rule tests skip and say why.
promtool:
	@if { command -v promtool && command -v amtool; } >/dev/null \
	    || [ -x $(PROM_TOOLS)/usr/bin/promtool -a -x $(PROM_TOOLS)/usr/bin/amtool ]; then \
	  true; \
	elif command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then \
	  echo "fetching promtool and amtool (Debian's prometheus, prometheus-alertmanager) into $(PROM_TOOLS)"; \
	  rm -rf $(PROM_TOOLS)/debs && mkdir -p $(PROM_TOOLS)/debs; \
	  { { [ "$$(id -u)" != 0 ] || apt-get update -qq; } \
	    && (cd $(PROM_TOOLS)/debs && apt-get download -qq prometheus prometheus-alertmanager) \
	    && dpkg-deb --fsys-tarfile $(PROM_TOOLS)/debs/prometheus_*.deb | tar -x -C $(PROM_TOOLS) ./usr/bin/promtool \
	    && dpkg-deb --fsys-tarfile $(PROM_TOOLS)/debs/prometheus-alertmanager_*.deb | tar -x -C $(PROM_TOOLS) ./usr/bin/amtool \
	    && rm -rf $(PROM_TOOLS)/debs; } \
	    || echo "could not fetch promtool and amtool: the alert-rule tests will skip (apt-get install prometheus prometheus-alertmanager)"; \
	else \
	  echo "no promtool, amtool or apt-get: the alert-rule tests will skip (apt-get install prometheus prometheus-alertmanager)"; \
	fi

test: lint typecheck imports browser promtool
	$(PY) -m pytest $(PYTEST_ARGS)


bench: install
	$(PY) -m tests.perf.run

clean:
	rm -rf $(VENV) $(TOOLS) .data .pytest_cache .mypy_cache .ruff_cache
