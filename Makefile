# Two-command quickstart: `make demo` (main job) and `make test` (test suite).
# Everything else happens on the way: system packages (apt), a virtual environment,
# torch, the package with its test extras, and the native build.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := build-essential pkg-config ffmpeg libavformat-dev libavcodec-dev libavutil-dev \
                libswscale-dev python3-dev python3-venv
TORCH := torch==2.14.1 torchvision==0.29.1
NATIVE_SOURCES := $(shell find csrc -type f 2>/dev/null) CMakeLists.txt pyproject.toml

.PHONY: demo test bench sysdeps venv build clean

demo: build
	$(VENV)/bin/msce demo

test: build
	$(PY) -m pytest -q

bench: build
	$(PY) -m pip install -q -e '.[bench]' --no-build-isolation
	$(PY) bench/run_bench.py

sysdeps: $(VENV)/.sysdeps
$(VENV)/.sysdeps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@mkdir -p $(VENV) && touch $@

venv: $(VENV)/.deps
$(VENV)/.deps: $(VENV)/.sysdeps pyproject.toml
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	$(PIP) install -q "scikit-build-core>=0.10" "pybind11>=2.12" cmake ninja
	touch $@

build: $(VENV)/.built
$(VENV)/.built: $(VENV)/.deps $(NATIVE_SOURCES)
	$(PIP) install -q --no-build-isolation -e '.[test]'
	touch $@

clean:
	rm -rf build $(VENV)/.built
