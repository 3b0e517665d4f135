# ttfkit: `make demo` runs the main job, `make test` the test suite; both set up .venv first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ttfkit-installed
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl

.PHONY: setup demo test clean

setup: $(STAMP)

# Reinstalls only when the dependency files change. torch first, from the CPU wheel, so that
# nothing later pulls a CUDA build; then the project (editable) under the pinned constraints.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/ttf gap --preset demo --out outputs/demo

test: setup
	$(PY) -m pytest

clean:
	rm -rf $(VENV) build *.egg-info
