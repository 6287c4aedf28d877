# Set-up is part of every target: a fresh clone needs only `make train` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: train test app bench clean

$(STAMP): pyproject.toml constraints-cpu.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints-cpu.txt -e '.[app,test,data]'
	touch $(STAMP)

train: $(STAMP)
	$(BIN)/deephtm train graphs/sine.json --out runs/sine

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

app: $(STAMP)
	$(BIN)/deephtm-app graphs/sine.json

bench: $(STAMP)
	$(BIN)/python benchmarks/online.py

clean:
	rm -rf $(VENV) runs .pytest_cache
