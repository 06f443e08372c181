# Two commands do all the set-up on a fresh machine with Python 3.11:
#   make demo   train Forward-Forward and its backprop twin on the bundled 8x8 digits
#   make test   run the test suite
PYTHON ?= python3
VENV   ?= .venv
# The CPU build of torch; override (e.g. TORCH=torch) to take whatever your index serves.
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin

.PHONY: install demo test bench bench-gpu clean

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
	$(BIN)/brainlearn bench rbm-ais --dataset mnist --data-dir ../shared/data
	$(BIN)/python benchmarks/eqprop_vs_bp.py --data-dir ../shared/data
	$(BIN)/python benchmarks/recurrent_ff.py --data-dir ../shared/data
	$(BIN)/python benchmarks/ff_jitter.py --data-dir ../shared/data
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/local_speed.py
	$(BIN)/python benchmarks/wave_rnn.py
	$(BIN)/python benchmarks/scaling.py --data-dir ../shared/data
	$(BIN)/python benchmarks/mortal.py --dataset mnist --data-dir ../shared/data
	$(BIN)/brainlearn bench dendritic-vs-bp --dataset mnist --data-dir ../shared/data
	$(BIN)/brainlearn bench ff-sequence --data-dir ../shared/data
	$(BIN)/brainlearn report

# The papers' configurations on one GPU, ordered by value. Time per command, training only, from measured seconds
# per epoch on an H100 with CUDA graphs (benchmarks/results/device_speed_cuda-graphs.md, ff_vs_bp_mnist-full.md)
# or, where a learner runs eagerly, from eager runs (device_speed_cuda.md, H200; mortal_parts/, H100):
# FF + BP twin 3.5 min (2 seeds, measured); wRNN vs iRNN at T = 1000 for the paper's 2k steps 4.5 min (measured);
# DBN about 7 min (eager); mortal hardware about 17 min (eager; 3 seeds in one process: split them by --seeds and
# --merge the parts to run them side by side); FF with jitter about 3 min per seed; recurrent FF about 7 min per
# objective; EP's two-layer net about 26 min; FF on sequences (3 x 2000, eager) about 6 min (2 s per epoch per net,
# measured over 12 epochs of 1 seed).
bench-gpu: install
	$(BIN)/brainlearn bench ff-vs-bp --dataset mnist --data-dir ../shared/data --full --device cuda --quiet
	$(BIN)/brainlearn bench wave-rnn --full --lengths 1000 --steps 2000 --device cuda --quiet
	$(BIN)/brainlearn bench dbn-vs-bp --dataset mnist --data-dir ../shared/data --full --device cuda --quiet
	$(BIN)/brainlearn bench mortal --dataset mnist --data-dir ../shared/data --device cuda --quiet
	$(BIN)/brainlearn bench ff-jitter --dataset mnist --data-dir ../shared/data --full --device cuda --quiet
	$(BIN)/brainlearn bench rff-vs-bp --dataset mnist --data-dir ../shared/data --full --device cuda --quiet
	$(BIN)/brainlearn bench eqprop-vs-bp --dataset mnist --data-dir ../shared/data --full --device cuda --quiet
	$(BIN)/brainlearn bench ff-sequence --data-dir ../shared/data --full --device cuda --quiet
	$(BIN)/brainlearn report

clean:
	rm -rf $(VENV) runs
