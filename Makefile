# The README's commands. Each creates .venv and installs what is missing first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONFIG ?= configs/default.yaml
# torch and torchvision first, pinned to the builds served from this machine's disk (a CUDA build
# that also runs on the CPU); any version in pyproject's ranges works elsewhere.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install train test tensorboard lint bench report accuracy docs mutants clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PINS) || $(PY) -m pip install -q torch torchvision
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

train: install
	$(PY) scripts/train.py fit --config $(CONFIG)

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check src scripts tests

tensorboard: install
	$(VENV)/bin/tensorboard --logdir logs

clean:
	rm -rf logs reports lightning_logs

report: install
	$(PY) scripts/compare.py --config configs/experiments/activations.yaml --readme docs/results.md
	$(PY) scripts/compare.py --config configs/experiments/optimizers.yaml --readme docs/results.md
	$(PY) scripts/compare.py --config configs/experiments/regularization.yaml --readme docs/results.md
	$(PY) scripts/tune.py --config configs/experiments/tune_digits.yaml --readme docs/results.md

bench: install
	$(PY) scripts/benchmark.py --json

# Shipped configs over 5 split seeds next to scikit-learn's tuned MLP on the same rows (~20 min on 2 cores).
accuracy: install
	$(PY) scripts/accuracy.py --readme docs/results.md

# Every generated README table: components, hyperparameter kinds, bad inputs (from the registries and tests/).
docs: install
	$(PY) -m lit_basics.readme_tables

# One deliberate bug at a time (tests/mutation/mutations.py) on a copy of the tree: caught / crash-only / survived.
mutants: install
	$(PY) -m tests.mutation
