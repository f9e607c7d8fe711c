VENV ?= .venv
PY := $(VENV)/bin/python
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev

.PHONY: run test bench soak clean

$(PY):
	@echo "installing Lyra and its dependencies into $(VENV) (first run only, about a minute)"
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(STAMP_DEV): pyproject.toml | $(PY)
	@echo "installing the development tools into $(VENV) (once, about a minute)"
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@ $(STAMP_RUN)

run: $(STAMP_RUN)
	$(VENV)/bin/lyra run

test: $(STAMP_DEV)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/pytest

bench: $(STAMP_DEV)
	$(PY) bench/overhead.py
	$(PY) bench/budget.py
	$(PY) bench/consensus.py
	$(PY) bench/gateway.py

soak: $(STAMP_DEV)  # 30+ minutes; not part of `make bench`
	$(PY) bench/soak.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
