"""Seconds per training epoch of every learner at its paper's configuration, through the one training loop,
on one device (a GPU where there is one): issue 24's table.

    python benchmarks/device_speed.py --data-dir ../shared/data --device cuda   # a few minutes on one H100/H200
    python benchmarks/device_speed.py --data-dir ../shared/data --device cpu --train-size 2000

Each workload trains with `fit` (metrics kept on the device) for one pass over `--train-size` MNIST training
images (all 60,000 by default; EP over a fifth of them, as its epoch is long), after a warm-up pass over
2,000 images that is not timed. The seconds per 60,000-image epoch are the measured training seconds scaled
by 60,000 / images; where a FLOP count is meaningful (FF, BP) the result also gives the fraction of the
device's measured float32 matmul throughput reached. The wave RNN (the paper's 27 channels x 100 positions,
batch 128) is timed in training steps per second on the adding task at each `--wave-lengths` T, after its graph's
warm-up (`wave_vs_irnn.training_speed`). Writes benchmarks/results/device_speed_<device>.{json,md}; on CUDA
with `--cuda-graphs` (each step captured as a CUDA graph, the loop's default) device_speed_cuda-graphs.*, without
graphs device_speed_cuda-eager.* (device_speed_cuda.* are an earlier eager run, before the option); `--tag T`
appends -T to the name.
"""

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from brainlearn.algorithms import (BackpropConfig, DeepBeliefNetConfig, EquilibriumPropConfig, ForwardForwardConfig,
                                   RecurrentFFConfig)
from brainlearn import wave_rnn
from brainlearn.data import load_dataset
from brainlearn.experiments import common
from brainlearn.experiments.ff_vs_bp import training_flops_per_sample
from brainlearn.experiments.wave_vs_irnn import training_speed
from brainlearn.train import TrainConfig, fit, make_learner, resolve_device

# name: (algorithm, config, batch size, share of the training set timed, paper)
WORKLOADS = {
    "ff_4x2000": ("ff", ForwardForwardConfig(hidden=(2000,) * 4), 100, 1.0, "Hinton 2022, sec. 3.3"),
    "bp_4x2000": ("bp", BackpropConfig(hidden=(2000,) * 4), 100, 1.0, "the FF net's backprop twin"),
    "dbn_500-500-2000": ("dbn", DeepBeliefNetConfig(hidden=(500, 500, 2000), lr=0.05, top_sleep="pcd",
                                                    discriminative=10.0), 100, 1.0, "Hinton, Osindero & Teh 2006"),
    "rff_3x2000": ("rff", RecurrentFFConfig(hidden=(2000,) * 3), 100, 1.0, "Hinton 2022, sec. 3.4 (8 iterations)"),
    "eqprop_500x2": ("eqprop", EquilibriumPropConfig(hidden=(500, 500), lr=(0.8, 0.2, 0.02), free_steps=150,
                                                     nudged_steps=6, beta=2.0, nudging="random"), 20, 0.2,
                     "Scellier & Bengio 2017 (free 150 / nudged 6 steps)"),
}
EPOCH = 60_000

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--data-dir", type=Path)
parser.add_argument("--device", default="auto")
parser.add_argument("--precision", choices=("fp32", "tf32"), default="fp32")
parser.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=True,
                    help="capture each training step as a CUDA graph (default: %(default)s)")
parser.add_argument("--train-size", type=int, default=EPOCH)
parser.add_argument("--only", nargs="*", choices=list(WORKLOADS), default=list(WORKLOADS),
                    help="these learner workloads (none: only the wave RNN; default: all)")
parser.add_argument("--wave-lengths", type=int, nargs="*", default=[1000],
                    help="adding-task lengths T for the wave RNN's steps per second (none: skip; default: %(default)s)")
parser.add_argument("--wave-steps", type=int, default=10, help="timed wave-RNN steps (default: %(default)s)")
parser.add_argument("--tag", help="appended to the result's name: device_speed_<device>-<tag>.*")
parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
args = parser.parse_args()


def markdown(result: dict) -> str:
    lines = [f"Device: {result['device_name']}, measured float32 matmul {result['matmul_gflops'] / 1000:.1f} TFLOP/s; "
             f"precision {result['precision']}; CUDA graphs {'on' if result['cuda_graphs'] else 'off'}.", "",
             "| workload | batch | images timed | s per 60,000-image epoch | TFLOP/s | of matmul |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in result["rows"]:
        tflops = f"{row['tflops']:.2f}" if "tflops" in row else "-"
        fraction = f"{100 * row['fraction_of_matmul']:.1f}%" if "fraction_of_matmul" in row else "-"
        lines.append(f"| {row['workload']} ({row['paper']}) | {row['batch_size']} | {row['images_timed']} | "
                     f"{row['seconds_per_epoch']:.2f} | {tflops} | {fraction} |")
    if result.get("wave_rows"):
        lines += ["", "| sequence workload | batch | steps timed | training steps/s |", "| --- | --- | --- | --- |"]
        lines += [f"| {row['workload']} ({row['paper']}) | {row['batch_size']} | {row['steps_timed']} | "
                  f"{row['steps_per_s']:.2f} |" for row in result["wave_rows"]]
    return "\n".join(lines) + "\n"


def write() -> None:
    """The result so far: written after every workload, so a run cut short keeps what it measured."""
    common.write_result(
        "device_speed", label, " ".join(["python", "benchmarks/device_speed.py", *sys.argv[1:]]), started, [0],
        {"epochs": 1, "device": str(device), "precision": args.precision, "cuda_graphs": args.cuda_graphs},
        {"device_name": device_name, "precision": args.precision, "cuda_graphs": args.cuda_graphs,
         "matmul_gflops": gflops, "rows": rows, "wave_rows": wave_rows}, args.out_dir, markdown)


device = resolve_device(args.device)
started = common.environment()
gflops = common.matmul_gflops(device=device)
device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
label = device.type if device.type != "cuda" else f"cuda-{'graphs' if args.cuda_graphs else 'eager'}"
label += f"-{args.tag}" if args.tag else ""
mnist = load_dataset("mnist", args.data_dir, download=False)
rows, wave_rows = [], []
for name in args.only:
    algorithm, config, batch, share, paper = WORKLOADS[name]
    size = max(batch, int(args.train_size * share) // batch * batch)
    train_config = TrainConfig(epochs=1, batch_size=batch, eval_every=0, device=args.device, precision=args.precision,
                               cuda_graphs=args.cuda_graphs)
    small_test = dict(x_test=mnist.x_test[:1000], y_test=mnist.y_test[:1000])
    learner = make_learner(algorithm, mnist.n_features, mnist.n_classes, config, seed=0)
    fit(learner, replace(mnist, x_train=mnist.x_train[:2000], y_train=mnist.y_train[:2000], **small_test),
        train_config, progress=False)  # warm-up: kernels chosen, memory allocated
    learner = make_learner(algorithm, mnist.n_features, mnist.n_classes, config, seed=0)
    start = time.perf_counter()
    history = fit(learner, replace(mnist, x_train=mnist.x_train[:size], y_train=mnist.y_train[:size], **small_test),
                  train_config, progress=False)
    common.synchronize(device)
    seconds = history[0]["seconds"] * EPOCH / size
    row = {"workload": name, "algorithm": algorithm, "paper": paper, "batch_size": batch, "images_timed": size,
           "seconds_per_epoch": seconds, "wall_seconds_with_test": time.perf_counter() - start,
           "errors_1000_test_images": {k: v for k, v in history[0].items() if k.startswith("error")}}
    if algorithm in ("ff", "bp"):
        flops = training_flops_per_sample(algorithm, (mnist.n_features, *config.hidden), mnist.n_classes)
        row["tflops"] = flops * EPOCH / seconds / 1e12
        row["fraction_of_matmul"] = flops * EPOCH / seconds / 1e9 / gflops
    rows.append(row)
    print(f"{name}: {seconds:.2f} s per epoch", flush=True)
    write()
for length in args.wave_lengths:
    torch.manual_seed(0)
    steps_per_s = training_speed(wave_rnn.WaveRNN(2, 27, 100, 1), length, wave_rnn.SequenceTrainConfig(
        batch_size=128, device=args.device, cuda_graphs=args.cuda_graphs), args.wave_steps)
    wave_rows.append({"workload": f"wrnn_T{length}", "paper": "Keller, Sejnowski & Welling 2023, adding task",
                      "batch_size": 128, "steps_timed": args.wave_steps, "steps_per_s": steps_per_s})
    print(f"wrnn T={length}: {steps_per_s:.2f} training steps/s", flush=True)
    write()
