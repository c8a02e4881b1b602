# Kiln: two commands on a fresh machine.
#   make run   - create .venv, install Kiln, start the editor at http://127.0.0.1:8188
#   make test  - install the test needs and run the whole suite
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# A CPU build that installs quickly; a GPU user installs their own torch into .venv first.
TORCH_CPU ?= torch==2.13.0
ARGS ?=

.PHONY: run test install install-test bench clean

run: $(VENV)/.installed
	$(PY) server.py $(ARGS)

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_CPU)
	$(PY) -m pip install -q -r requirements.txt
	# torchsde (ComfyUI-identical Brownian noise for the SDE samplers) declares scipy but never imports it.
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	touch $@

install-test: $(VENV)/.installed-test

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt
	$(PY) -m pip install -q -r requirements-test.txt
	# k-diffusion is the samplers' reference; its own dependencies (torchvision among them) are not needed.
	$(PY) -m pip install -q --no-deps k-diffusion==0.1.1.post1
	touch $@

test: $(VENV)/.installed-test
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) tools/bench_engine.py

clean:
	rm -rf $(VENV) .pytest_cache
