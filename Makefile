# kexp: the commands a user runs. Defaults live in kexp/config.py; a variable left empty is not
# passed, so `make train` and `python -m kexp train` behave the same.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RAY_STAMP := $(VENV)/.installed-ray
DEV_STAMP := $(VENV)/.installed-dev
export TF_CPP_MIN_LOG_LEVEL ?= 2

opt = $(if $($(1)),$(2) $($(1)))
# Every option of `kexp train` is a variable: the option in capitals (EPOCHS=3, BATCH_SIZE=64,
# SNAPSHOT_BATCHES=4; LR is short for LEARNING_RATE); a flag is on with 1 and off with 0
# (AUGMENT=0, TENSORBOARD=1). kexp/config.py lists them (python -m kexp.cli_options),
# once per `make train`, after the venv exists.
TRAIN_OPTIONS = $(eval TRAIN_OPTIONS := $$(shell $(PY) -m kexp.cli_options) LR:value:--learning-rate)$(TRAIN_OPTIONS)
# $(1): the variable, $(2): value, on or off, $(3): the option
train_word = $(if $($(1)),$(if $(filter value,$(2)),$(3) $($(1)),$(if $(filter \
	$(if $(filter 0 no false off,$($(1))),off,on),$(2)),$(3))))
train_arg = $(call train_word,$(word 1,$(1)),$(word 2,$(1)),$(word 3,$(1)))
TRAIN_ARGS = $(strip $(foreach option,$(TRAIN_OPTIONS),$(call train_arg,$(subst :, ,$(option)))))

.PHONY: venv train visualize runs test test-fast demos compare bench bench-compare torch-peer \
	tensorboard notebook clean

venv: $(STAMP)

# Rebuilt when missing or older than what it is built from.
$(STAMP): requirements.txt requirements-data.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-data.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Ray, for `kexp compare --engine ray`: optional, so only the targets that need it install it.
$(RAY_STAMP): $(STAMP) requirements-ray.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-ray.txt -c requirements.txt
	touch $(RAY_STAMP)

# The tests' own tools (a Jupyter kernel that runs docs/tutorial.ipynb): make test installs them.
$(DEV_STAMP): $(STAMP) requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c requirements.txt
	touch $(DEV_STAMP)

train: $(STAMP)
	$(if $(filter EPOCHS:%,$(TRAIN_OPTIONS)),,$(error python -m kexp.cli_options listed no options: \
		is the venv whole? make clean venv))$(PY) -m kexp train $(TRAIN_ARGS)

visualize: $(STAMP)
	$(PY) -m kexp visualize $(call opt,RUNS_DIR,--runs-dir) $(RUN)

runs: $(STAMP)
	$(PY) -m kexp runs $(call opt,RUNS_DIR,--runs-dir)

# On two workers (pytest-xdist), a file's tests together so its module fixtures are built once:
# the suite uses one core most of the time. TEST_WORKERS=1 runs it in one process.
TEST_WORKERS ?= 2
test: $(STAMP) $(RAY_STAMP) $(DEV_STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The edit-test loop: every test that trains no model and starts no study (about a minute).
test-fast: $(STAMP) $(DEV_STAMP)
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

demos: $(STAMP)
	$(PY) -m kexp demo all $(call opt,RUNS_DIR,--runs-dir) $(call opt,CONVERGED_RUN,--converged-run)

# ENGINE=ray [ADDRESS=host:6379] [CPUS_PER_TRAINING=N] runs the study on Ray; RESUME=runs/compare-<ts>
# continues a study. FULL_GRID=1 trains every initializer of the full grid; INITS="a b", SEEDS="0 1".
compare: $(STAMP) $(if $(filter ray,$(ENGINE)),$(RAY_STAMP))
	$(PY) -m kexp compare $(call opt,JOBS,--jobs) $(call opt,EPOCHS,--epochs) $(call opt,RUNS_DIR,--runs-dir) \
		$(if $(FULL_GRID),--full-grid) $(call opt,INITS,--inits) $(call opt,SEEDS,--seeds) \
		$(call opt,ENGINE,--engine) $(call opt,ADDRESS,--address) \
		$(call opt,CPUS_PER_TRAINING,--cpus-per-training) $(call opt,RESUME,--resume)

tensorboard: $(STAMP)
	$(PY) -m tensorboard.main --logdir $(or $(RUNS_DIR),$(shell $(PY) -c \
		"from kexp.config import DEFAULTS; print(DEFAULTS.runs_dir)"))

# JupyterLab on docs/tutorial.ipynb, installed into the venv the first time it is asked for.
notebook: $(STAMP)
	$(PY) -c "import jupyterlab" 2>/dev/null || \
		$(PY) -m pip install --quiet --disable-pip-version-check jupyterlab -c requirements.txt
	$(PY) -m jupyterlab docs/tutorial.ipynb

# The PyTorch peer that `make bench` measures beside kexp, in its own venv (CPU build, pinned).
TORCH_VENV := bench/.venv-torch
TORCH_STAMP := $(TORCH_VENV)/.installed
torch-peer: $(TORCH_STAMP)
$(TORCH_STAMP): bench/requirements-torch.txt
	test -x $(TORCH_VENV)/bin/python || $(PYTHON) -m venv $(TORCH_VENV)
	$(TORCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		-r bench/requirements-torch.txt
	touch $(TORCH_STAMP)

bench: $(STAMP) $(TORCH_STAMP)
	$(PY) bench/run.py

bench-compare: $(STAMP) $(RAY_STAMP)
	$(PY) bench/compare_engines.py

clean:
	rm -rf $(VENV) $(TORCH_VENV) .pytest_cache kexp.egg-info
