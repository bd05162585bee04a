# Quick start:  make demo   (pre-train -> convert -> fine-tune on bundled data)
#               make test   (the test suite; what CI runs, after make lint)
#               make lint   (flake8, isort and yapf in check mode)
#               make format (isort and yapf applied in place)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.folk-installed
SHARED ?= ../shared
DEMO_DATA ?= data/demo
# what `make lint` / `make format` check (settings in setup.cfg)
LINT_PATHS ?= setup.py projects configs tools tests benchmarks

.PHONY: install demo demo-data test lint format clean

$(STAMP): requirements.txt requirements/tests.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip==24.3.1
	# mmcv-lite and full mmcv share the package name: keep a full mmcv if
	# the environment already has one (see docs/get_started.md, "Full mmcv").
	if $(PY) -c "import mmcv._ext" 2>/dev/null; then \
	  grep -v '^mmcv-lite' requirements.txt > $(VENV)/requirements.nommcv.txt; \
	  $(PIP) install -q -r $(VENV)/requirements.nommcv.txt -r requirements/tests.txt; \
	else \
	  $(PIP) install -q -r requirements.txt -r requirements/tests.txt; \
	fi
	$(PIP) install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

# the data first (../shared/data, else DEMO_DATA made by
# tools/dataset_converters/prepare_demo_data.py): a missing one is said
# before the install
demo:
	@SHARED=$(SHARED) DEMO_DATA=$(DEMO_DATA) bash tools/demo.sh --check-data
	$(MAKE) install
	SHARED=$(SHARED) DEMO_DATA=$(DEMO_DATA) bash tools/demo.sh

# the demo's data from the public archives (README.md, "Quick start");
# DEMO_DATA_ARGS='--imagenette FILE --camvid FILE' reads local copies
demo-data: install
	$(PY) tools/dataset_converters/prepare_demo_data.py --out $(DEMO_DATA) $(DEMO_DATA_ARGS)

test: install
	$(PY) -m pytest tests

# every tool runs, the exit status says whether any found something
lint: install
	@status=0; \
	echo "flake8"; $(VENV)/bin/flake8 $(LINT_PATHS) || status=1; \
	echo "isort --check-only"; \
	$(VENV)/bin/isort --check-only --diff $(LINT_PATHS) || status=1; \
	echo "yapf --diff"; \
	$(VENV)/bin/yapf --diff --recursive $(LINT_PATHS) || status=1; \
	exit $$status

format: install
	$(VENV)/bin/isort $(LINT_PATHS)
	$(VENV)/bin/yapf --in-place --recursive $(LINT_PATHS)

clean:
	rm -rf work_dirs $(VENV)
