# The two commands: `make demo` (the main job) and `make test`. Both set up .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: install demo train-demo test test-all bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH) -e '.[test,deepspeed,roi]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m training.demo run

train-demo: $(STAMP)
	$(PY) -m training.demo train

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-all: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(PIP) install -q -e '.[bench]'
	$(PY) -m benchmarks.run --quick

clean:
	rm -rf $(VENV) .pytest_cache
