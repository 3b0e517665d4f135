# ttfkit: `make demo` runs the main job, `make test` the test suite; both set up .venv first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ttfkit-installed
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl

.PHONY: setup lerobot demo test clean

setup: $(STAMP)

# Reinstalls only when the dependency files change. torch first, from the CPU wheel, so that
# nothing later pulls a CUDA build; then the project (editable) under the pinned constraints.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,robosuite,ray,imagecodecs,tensorboard,wandb]'
	$(PY) -m pip install --quiet --no-deps -c constraints.txt robosuite==1.5.2  # see pyproject's robosuite extra
	touch $(STAMP)

# LeRobot 0.4.4 integration (tests/lerobot): kept out of the core install. --no-deps everywhere, since
# every LeRobot release pins torch < 2.13; the torchvision shim (.pth + module) goes into site-packages;
# lerobot_plugin/ is the policy plugin distribution `lerobot_policy_ttfkit` (editable).
LEROBOT_STAMP := $(VENV)/.ttfkit-lerobot-installed
lerobot: $(LEROBOT_STAMP)

$(LEROBOT_STAMP): $(STAMP) requirements-lerobot.txt tools/_ttfkit_torchvision_shim.py tools/ttfkit_torchvision_shim.pth lerobot_plugin/pyproject.toml
	$(PY) -m pip install --quiet --no-deps -r requirements-lerobot.txt
	$(PY) -m pip install --quiet --no-deps -e lerobot_plugin
	cp tools/_ttfkit_torchvision_shim.py tools/ttfkit_torchvision_shim.pth \
	    "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
	$(PY) -c "import torch, torchvision, lerobot.policies.factory; \
	    assert torch.__version__.startswith('2.13.0'), torch.__version__; \
	    print('lerobot', lerobot.__version__, 'torch', torch.__version__, 'torchvision', torchvision.__version__)"
	touch $(LEROBOT_STAMP)

demo: setup
	$(VENV)/bin/ttf gap --preset demo --threads 1 --out outputs/demo

test: setup lerobot
	$(PY) -m pytest

clean:
	rm -rf $(VENV) build *.egg-info
