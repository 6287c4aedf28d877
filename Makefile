# Set-up is part of every target: a fresh clone needs only `make train` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: train test app bench nab-dev clean

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

# NAB's protocol on the development set beside the project (../shared/data/nab/dev): detect
# every series into a new runs/nab-dev-<seed> folder, then score the corpus. SEED=1 make nab-dev.
SEED ?= 0
NAB_DEV ?= ../shared/data/nab/dev
nab-dev: $(STAMP)
	rm -rf runs/nab-dev-$(SEED)
	$(BIN)/deephtm detect graphs/anomaly.json --input-dir $(NAB_DEV) --out-dir runs/nab-dev-$(SEED) --seed $(SEED)
	$(BIN)/deephtm score runs/nab-dev-$(SEED) --windows $(NAB_DEV)/combined_windows_dev.json

clean:
	rm -rf $(VENV) runs .pytest_cache
