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

.PHONY: demo test bench sysdeps venv build clean sanitize

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

# ASan + UBSan build of the native core in its own build dir, run on the native and decode
# tests. Python is not instrumented: the ASan runtime is LD_PRELOADed (with libstdc++, so
# that ASan's exception interceptors find it at start-up), leak checks are off
# (the interpreter keeps its objects at exit), any UBSan report aborts. The package is
# staged in $(SAN_BUILD)/python with the sanitized extension, and a sitecustomize there
# removes an editable install's import hook so that this copy is the one imported.
SAN_BUILD ?= build-sanitize
SAN_TESTS ?= tests/native/test_decode.py tests/native/test_hardening.py tests/native/test_fuzz.py \
             tests/native/test_plan.py tests/native/test_pixel_math.py tests/native/test_output_pool.py \
             tests/native/test_simd_paths.py tests/synth/test_motion_reference.py \
             tests/synth/test_motion.py::test_motion_aware_load_decodes_the_clip_once \
             tests/synth/test_motion.py::test_motion_aware_load_releases_the_clip_on_error
sanitize: $(VENV)/.deps
	cmake -S . -B $(SAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMSCE_SANITIZE=ON -DMSCE_CUDA=OFF \
	  -DMSCE_BUILD_PYTHON=ON -DMSCE_BUILD_BENCH=OFF -DMSCE_NATIVE_ARCH=OFF -DPython_EXECUTABLE=$(abspath $(PY)) \
	  -Dpybind11_DIR="$$($(PY) -c 'import pybind11; print(pybind11.get_cmake_dir())')" \
	  -DCMAKE_MAKE_PROGRAM="$$(command -v ninja || echo $(abspath $(VENV))/bin/ninja)"
	nice cmake --build $(SAN_BUILD) -j2
	rm -rf $(SAN_BUILD)/python && mkdir -p $(SAN_BUILD)/python
	cp -r python/msce $(SAN_BUILD)/python/msce && rm -f $(SAN_BUILD)/python/msce/_C*.so
	cp $(SAN_BUILD)/_C*.so $(SAN_BUILD)/python/msce/
	printf '%s\n' 'import sys' \
	  'sys.meta_path[:] = [f for f in sys.meta_path if "_editable" not in type(f).__module__]' \
	  > $(SAN_BUILD)/python/sitecustomize.py
	rm -f $(SAN_BUILD)/report.*
	LD_PRELOAD="$$($(CXX) -print-file-name=libasan.so) $$($(CXX) -print-file-name=libstdc++.so)" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:log_path=$(abspath $(SAN_BUILD))/report \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$(abspath $(SAN_BUILD))/report \
	  PYTHONPATH=$(abspath $(SAN_BUILD))/python \
	  $(PY) -m pytest -q -p no:cacheprovider $(SAN_TESTS) \
	  || { cat $(SAN_BUILD)/report.* 2>/dev/null; exit 1; }
	@if ls $(SAN_BUILD)/report.* >/dev/null 2>&1; then cat $(SAN_BUILD)/report.*; exit 1; fi
	@echo "sanitize: no AddressSanitizer or UBSan report"

clean:
	rm -rf build $(SAN_BUILD) $(VENV)/.built
