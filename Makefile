# Quick start:  make demo   (pre-train -> convert -> fine-tune on bundled data)
#               make test   (the test suite; what CI runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.folk-installed
SHARED ?= ../shared

.PHONY: install demo test lint clean

$(STAMP): requirements.txt requirements/tests.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip==24.3.1
	# mmcv-lite and full mmcv share the package name: keep a full mmcv if
	# the environment already has one (see README, "Full mmcv").
	if $(PY) -c "import mmcv._ext" 2>/dev/null; then \
	  grep -v '^mmcv-lite' requirements.txt > $(VENV)/requirements.nommcv.txt; \
	  $(PIP) install -q -r $(VENV)/requirements.nommcv.txt -r requirements/tests.txt; \
	else \
	  $(PIP) install -q -r requirements.txt -r requirements/tests.txt; \
	fi
	$(PIP) install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

demo: install
	SHARED=$(SHARED) bash tools/demo.sh

test: install
	$(PY) -m pytest tests

clean:
	rm -rf work_dirs $(VENV)
