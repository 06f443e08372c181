"""The speed of a locally connected layer (Hinton 2022, sec. 4: every unit has its own receptive field, no weight
sharing) against a dense layer with the same input and as many weights, at MNIST and CIFAR-10 sizes.

    brainlearn bench local-speed                 # on random inputs: speed does not depend on the data
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from ..algorithms import local
from .common import Experiment, environment

SHAPES = {  # name: (input channels, units per pixel, side), as in the local-vs-bp presets
    "MNIST-sized": (1, 1, 28), "CIFAR-10-sized": (3, 3, 32)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--field", type=int, default=11, help="receptive field side, odd (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=100, help="(default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="timed batches per layer (default: %(default)s)")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"),
                        help="where the JSON and Markdown go (default: %(default)s)")


def run_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser, command: str) -> dict:
    try:
        local.check_field(args.field)
    except ValueError as error:
        parser.error(str(error))
    if args.batch_size < 1 or args.repeats < 1:
        parser.error("need --batch-size >= 1 and --repeats >= 1")
    return run(args.field, args.batch_size, args.repeats, args.out_dir, command)


def run(field: int, batch: int, repeats: int, out_dir: Path, command: str) -> dict:
    """`layer_speed` at MNIST and CIFAR-10 sizes, on random inputs."""
    started = environment()
    rows = [{"shape": name, "channels": channels, "maps": maps, "side": side,
             **layer_speed(channels, maps, side, side, field, batch, repeats)}
            for name, (channels, maps, side) in SHAPES.items()]
    return EXPERIMENT.write("random", command, started, [], {"batch_size": batch, "repeats": repeats},
                            {"field": field, "rows": rows}, out_dir)


def layer_speed(channels: int, maps: int, height: int, width: int, field: int, batch: int = 100,
                repeats: int = 5) -> dict:
    """Training samples/s (forward and backward) of a locally connected layer, and of a dense layer with as many
    weights and the same input."""
    layer = local.LocallyConnected2d(channels, maps, height, width, field)
    weights = layer.weight.numel()
    dense = torch.nn.Linear(channels * height * width, max(1, weights // (channels * height * width)))
    x = torch.rand(batch, channels * height * width)

    def samples_per_s(module) -> float:
        module(x).square().mean().backward()  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            module(x).square().mean().backward()
        return batch * repeats / (time.perf_counter() - start)

    return {"local_weights": weights, "dense_weights": dense.weight.numel(), "batch": batch,
            "local_samples_per_s": samples_per_s(layer), "dense_samples_per_s": samples_per_s(dense)}


def markdown(result: dict) -> str:
    field = result["field"]
    lines = [f"Training samples/s (forward and backward) of one locally connected layer ({field}x{field} receptive "
             "fields, no weight sharing) and of a dense layer with the same input and as many weights.", "",
             "| input | local layer: weights | samples/s | dense layer: weights | samples/s | dense / local |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in result["rows"]:
        lines.append(f"| {row['shape']}: {row['channels']} x {row['side']} x {row['side']}, {row['maps']} unit(s) per "
                     f"pixel | {row['local_weights']} | {row['local_samples_per_s']:.0f} | {row['dense_weights']} | "
                     f"{row['dense_samples_per_s']:.0f} | {row['dense_samples_per_s'] / row['local_samples_per_s']:.1f}x |")
    lines.append("")
    return "\n".join(lines)


EXPERIMENT = Experiment(
    name="local-speed", result="local_layer_speed",
    help="samples/s of a locally connected layer vs a dense layer with as many weights", description=__doc__,
    code=(local,), add_arguments=add_arguments, run_from_args=run_from_args, markdown=markdown)
