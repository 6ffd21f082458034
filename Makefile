# Two entry points for a fresh machine: `make demo` and `make test` (see README).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# On a machine without an NVIDIA driver we install the CPU build of torch first, so that
# resolving the project's `torch>=2.2` does not pull a multi-GB CUDA build.
TORCH_CPU ?= torch==2.13.0

.PHONY: demo test lint install install-dev clean

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@if ! command -v nvidia-smi >/dev/null 2>&1; then \
		echo "no CUDA driver found: installing the CPU build of torch ($(TORCH_CPU))"; \
		$(PIP) install -q "$(TORCH_CPU)"; \
	fi
	touch $@

$(VENV)/.installed: $(VENV)/.created pyproject.toml
	$(PIP) install -q -e .
	touch $@

install: $(VENV)/.installed

# The main job on the embedded default: the shipped tiny model animates a held-out lab character.
demo: install
	$(VENV)/bin/animate-anyone demo --out demo_output

$(VENV)/.dev-installed: $(VENV)/.created pyproject.toml
	$(PIP) install -q -e ".[dev]"
	touch $@

install-dev: $(VENV)/.dev-installed

lint: install-dev
	$(VENV)/bin/ruff check src tests $(wildcard benchmarks)

test: install-dev lint
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
