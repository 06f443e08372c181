# Two commands do all the set-up on a fresh machine with Python 3.11:
#   make demo   train Forward-Forward and its backprop twin on the bundled 8x8 digits
#   make test   run the test suite
PYTHON ?= python3
VENV   ?= .venv
# The CPU build of torch; override (e.g. TORCH=torch) to take whatever your index serves.
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin

.PHONY: install demo test bench clean

$(BIN)/brainlearn: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

install: $(BIN)/brainlearn

demo: install
	$(BIN)/brainlearn bench ff-vs-bp --dataset digits --out-dir runs/demo

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/ff_vs_bp.py --data-dir ../shared/data
	$(BIN)/python benchmarks/dbn_vs_bp.py --data-dir ../shared/data
	$(BIN)/python benchmarks/eqprop_vs_bp.py --data-dir ../shared/data
	$(BIN)/python benchmarks/recurrent_ff.py --data-dir ../shared/data
	$(BIN)/python benchmarks/ff_jitter.py --data-dir ../shared/data
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/local_speed.py
	$(BIN)/python benchmarks/wave_rnn.py
	$(BIN)/python benchmarks/scaling.py --data-dir ../shared/data
	$(BIN)/python benchmarks/mortal.py --dataset mnist --data-dir ../shared/data
	$(BIN)/brainlearn bench dendritic-vs-bp --dataset mnist --data-dir ../shared/data
	$(BIN)/brainlearn report

clean:
	rm -rf $(VENV) runs
