"""`brainlearn train | eval | bench | dream | probe | report`: every learner flag comes from a config dataclass field.

Bad flags or values print a message and exit with code 2 (argparse's convention); a data
problem, a file that cannot be read or written, a run folder in use, or a diverging run prints
one clear line and exits with code 1. Neither prints a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shlex
import subprocess
import sys
import typing
from pathlib import Path

import torch

from . import bench, distributed, mortal, plots, probe, report, scaling, wave_rnn
from .algorithms import (ALGORITHMS, BackpropConfig, DeepBeliefNetConfig, EquilibriumPropConfig,
                         ForwardForwardConfig, RecurrentFFConfig, local)
from .data import DATASETS, DataError, load_dataset
from .distributed import DistributedError
from .runfolder import CHECKPOINT, RunFolderError, check_usable, os_problem
from .train import (DivergedError, TrainConfig, chance_warning, check_fits, check_resumable, config_from_dict, fit,
                    learner_from_file, load_checkpoint, make_learner, resolve_device)

EPILOG = """examples:
  brainlearn train ff --dataset digits --epochs 30 --run-dir runs/ff
  brainlearn train ff --dataset mnist --data-dir ../shared/data --run-dir runs/ff --resume
  brainlearn train ff --dataset mnist --nproc 2 --run-dir runs/ff2       # torchrun, 2 processes
  brainlearn eval runs/ff/checkpoint.pt
  brainlearn bench ff-vs-bp --dataset digits
  brainlearn train dbn --dataset digits --epochs 40 --batch-size 20 --run-dir runs/dbn
  brainlearn dream runs/dbn/checkpoint.pt --label 2 --out dreams.png
  brainlearn probe runs/eqprop/checkpoint.pt --layer layer1 --units 0 1 2 --out probes/eqprop
  brainlearn report
"""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the message and where to read more), exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_config_arguments(parser: argparse.ArgumentParser, config_class: type, title: str,
                         skip: tuple[str, ...] = (), defaults: bool = True) -> None:
    """One --flag per dataclass field (but those in `skip`), typed, with the field's help and choices.
    `defaults=False`: a flag not given leaves no attribute (to tell which flags a command line names)."""
    group = parser.add_argument_group(title)
    hints = typing.get_type_hints(config_class)
    for f in dataclasses.fields(config_class):
        if f.name in skip:
            continue
        kind = hints[f.name]
        options = {"help": f"{f.metadata.get('help', '')} (default: %(default)s)",
                   "default": f.default if defaults else argparse.SUPPRESS, "dest": f.name}
        if typing.get_origin(kind) is tuple:
            options.update(nargs="+", type=typing.get_args(kind)[0], metavar="N")
        elif kind is bool:
            options.update(action=argparse.BooleanOptionalAction)
        else:
            options.update(type=kind, choices=f.metadata.get("choices"))
        group.add_argument("--" + f.name.replace("_", "-"), **options)


def config_from_args(config_class: type, args: argparse.Namespace, parser: argparse.ArgumentParser):
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(config_class) if hasattr(args, f.name)}
    try:
        return config_class(**values)
    except ValueError as error:
        parser.error(str(error))  # exits with code 2


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto",
                        help="auto (a CUDA GPU when there is one), cpu, cuda or cuda:N (default: %(default)s)")


def add_data_arguments(parser: argparse.ArgumentParser, default: str | None = "digits",
                       default_help: str = "%(default)s") -> None:
    parser.add_argument("--dataset", choices=DATASETS, default=default,
                        help="digits: scikit-learn's bundled 8x8 digits (no download); mnist: the IDX files "
                             f"(default: {default_help})")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder holding mnist/ (default: $BRAINLEARN_DATA, else ~/.cache/brainlearn; "
                             "missing files are downloaded and checksummed)")
    parser.add_argument("--no-download", action="store_true", help="fail instead of downloading missing files")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="brainlearn", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Learning without backpropagation, each algorithm beside a backprop twin.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train one learner, with checkpoints and --resume")
    algorithms = train.add_subparsers(dest="algorithm", required=True, metavar="ALGORITHM")
    for name, learner in ALGORITHMS.items():
        doc = sys.modules[learner.__module__].__doc__
        sub = algorithms.add_parser(name, help=doc.strip().splitlines()[0], description=doc,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        add_data_arguments(sub, default=None, default_help="digits, or with --resume the run's own")
        sub.add_argument("--run-dir", type=Path, default=Path("runs") / name,
                         help="where checkpoint.pt and metrics.jsonl go; held by one run at a time (default: "
                              "%(default)s)")
        mode = sub.add_mutually_exclusive_group()
        mode.add_argument("--resume", action="store_true",
                          help="continue the run in --run-dir from its checkpoint, with its settings (more --epochs "
                               "extend it; --device may differ)")
        mode.add_argument("--overwrite", action="store_true",
                          help="delete the run already in --run-dir and start a new one there")
        sub.add_argument("--nproc", type=int, default=1,
                         help="data-parallel processes on this machine, started by torchrun; --batch-size is the "
                              "global batch (default: %(default)s)")
        sub.add_argument("--dist-timeout", type=float, default=300.0,
                         help="seconds a process waits for the others before it stops with an error "
                              "(default: %(default)s)")
        add_config_arguments(sub, TrainConfig, "training")
        add_config_arguments(sub, learner.Config, f"{name} learner")

    evaluate = commands.add_parser("eval", help="test error of a saved checkpoint, by every evaluation method")
    evaluate.add_argument("checkpoint", type=Path,
                          help="a checkpoint.pt or model.safetensors written by `brainlearn train`")
    add_data_arguments(evaluate, default=None, default_help="the one it was trained on")
    add_device_argument(evaluate)

    bench_parser = commands.add_parser("bench", help="benchmarks that compare a learner with its backprop twin")
    benchmarks = bench_parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    ff_vs_bp = benchmarks.add_parser("ff-vs-bp", help="Forward-Forward vs backprop: test errors and speed",
                                     description=bench.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_bench_arguments(ff_vs_bp, "FF's Adam learning rate", "Hinton 2022: 4 hidden layers of 2000, 60 epochs")
    ff_vs_bp.add_argument("--negatives", choices=("hard", "random"), default="hard",
                          help="FF negative labels (default: %(default)s)")
    jitter_parser = benchmarks.add_parser(
        "ff-jitter", help="FF and backprop with and without jitter (random shifts) on the same budget",
        description=bench.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_bench_arguments(jitter_parser, "FF's Adam learning rate", "4 hidden layers of 2000, 120 epochs")
    jitter_parser.add_argument("--jitter", type=int, default=2,
                               help="largest shift in pixels, each way (default: %(default)s: 25 positions)")
    rff_vs_bp = benchmarks.add_parser(
        "rff-vs-bp", help="recurrent (GLOM-like) Forward-Forward, both objectives, vs backprop",
        description=bench.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_bench_arguments(rff_vs_bp, "the recurrent net's Adam learning rate", "3 hidden layers of 2000, 60 epochs")
    rff_vs_bp.add_argument("--negatives", choices=("hard", "random"), default="hard",
                           help="negative labels (default: %(default)s)")
    rff_vs_bp.add_argument("--objectives", nargs="+", choices=("high", "low"), default=["high", "low"],
                           help="goodness objectives to train, one net each (default: %(default)s)")
    dbn_vs_bp = benchmarks.add_parser(
        "dbn-vs-bp", help="deep belief net vs backprop: test errors, speed, dreams, AIS log-likelihood",
        description=bench.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_bench_arguments(dbn_vs_bp, "the RBMs' SGD learning rate", "Hinton et al. 2006's net, 100 epochs")
    dbn_vs_bp.add_argument("--top-sleep", choices=("same", "cd", "pcd"),
                           help="where the top RBM's sleep phase starts (default: the preset's)")
    dbn_vs_bp.add_argument("--discriminative", type=float,
                           help="weight of the top RBM's conditional wake-sleep term (default: the preset's)")
    dbn_vs_bp.add_argument("--dream-steps", type=int, default=1000,
                           help="Gibbs steps in the top RBM per dream (default: %(default)s)")
    dbn_vs_bp.add_argument("--dream-temperature", type=float, default=2.0,
                           help="temperature each dream chain starts at, cooling to 1 over its first half "
                                "(1: no annealing; default: %(default)s)")
    dbn_vs_bp.add_argument("--ais-steps", type=int, default=14500,
                           help="intermediate distributions of AIS (default: %(default)s, as Salakhutdinov & Murray)")

    eqprop_vs_bp = benchmarks.add_parser(
        "eqprop-vs-bp", help="Equilibrium Propagation vs backprop: errors, relaxation cost, gradient check",
        description=bench.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_bench_arguments(eqprop_vs_bp, "with --hidden: SGD learning rate of each weight matrix",
                        "both architectures for 60 epochs", lr_nargs="+")
    eqprop_vs_bp.add_argument("--free-steps", type=int, help="free-phase steps (default: the preset's)")
    eqprop_vs_bp.add_argument("--nudged-steps", type=int, help="nudged-phase steps (default: the preset's)")
    eqprop_vs_bp.add_argument("--beta", type=float, help="nudging strength (default: the preset's)")
    eqprop_vs_bp.add_argument("--nudging", choices=("one-sided", "symmetric", "random"),
                              help="(default: the preset's, random as in Scellier & Bengio's code)")

    wave = benchmarks.add_parser(
        "wave-rnn", help="traveling-wave RNN vs identity RNN: adding task by length, copy task, speed",
        description=wave_rnn.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    wave.add_argument("--full", action="store_true",
                      help="the paper's setting: T = 100 200 400 700 1000, 60000 steps, 27 channels")
    wave.add_argument("--lengths", type=int, nargs="+", help="adding-task lengths T (default: 100 200 400)")
    wave.add_argument("--steps", type=int, help="training steps per model and length (default: 1000)")
    wave.add_argument("--channels", type=int, help="wRNN channels (default: 8; the paper's 27 by --full)")
    wave.add_argument("--positions", type=int, default=100, help="wRNN ring size (default: %(default)s)")
    wave.add_argument("--irnn-hidden", type=int, default=100, help="iRNN units (default: %(default)s)")
    wave.add_argument("--copy-delay", type=int, default=100, help="copy task blank steps (default: %(default)s)")
    wave.add_argument("--copy-steps", type=int, default=500, help="copy task training steps (default: %(default)s)")
    wave.add_argument("--speed-length", type=int, default=1000,
                      help="T at which training steps per second are timed (default: %(default)s)")
    wave.add_argument("--solve-mse", type=float, default=0.05,
                      help="adding task counts as solved at this held-out MSE (default: %(default)s)")
    add_config_arguments(wave, wave_rnn.SequenceTrainConfig, "training (both models)", skip=("steps",))
    add_output_arguments(wave)

    scaling_parser = benchmarks.add_parser(
        "scaling", help="FF and BP with 1 and 2 data-parallel processes; the FF layer pipeline vs sequential",
        description=scaling.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(scaling_parser, default="mnist")
    scaling_parser.add_argument("--train-size", type=int, default=12000,
                                help="training images per epoch (default: %(default)s)")
    scaling_parser.add_argument("--epochs", type=int, default=2, help="epochs per case (default: %(default)s)")
    add_output_arguments(scaling_parser, "do not name each case as it starts")

    local_parser = benchmarks.add_parser(
        "local-vs-bp", help="CIFAR-10 with locally connected layers: recurrent FF vs BP, 2 and 3 hidden layers",
        description=bench.local_vs_bp.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(local_parser, default="cifar10")
    local_parser.add_argument("--depths", type=int, nargs="+", default=[2, 3],
                              help="numbers of hidden layers, one net each (default: %(default)s)")
    local_parser.add_argument("--maps", type=int, help="units at each pixel (default: the preset's; CIFAR-10: 3)")
    local_parser.add_argument("--field", type=int, help="receptive field side, odd (default: the preset's; 11)")
    local_parser.add_argument("--epochs", type=int, help="(default: the preset's)")
    local_parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="(default: %(default)s)")
    local_parser.add_argument("--batch-size", type=int, default=100, help="(default: %(default)s)")
    local_parser.add_argument("--lr", type=float, default=1e-3, help="FF's Adam learning rate (default: %(default)s)")
    local_parser.add_argument("--bp-lr", type=float, default=1e-3,
                              help="BP's Adam learning rate (default: %(default)s)")
    local_parser.add_argument("--objective", choices=("high", "low"), default="low",
                              help="FF's goodness for positive data (default: %(default)s)")
    local_parser.add_argument("--keep-runs", action="store_true", help="also keep each run's checkpoint and log")
    add_output_arguments(local_parser)

    speed_parser = benchmarks.add_parser(
        "local-speed", help="samples/s of a locally connected layer vs a dense layer with as many weights",
        description=bench.local_speed_benchmark.__doc__)
    speed_parser.add_argument("--field", type=int, default=11, help="receptive field side, odd (default: %(default)s)")
    speed_parser.add_argument("--batch-size", type=int, default=100, help="(default: %(default)s)")
    speed_parser.add_argument("--repeats", type=int, default=5, help="timed batches per layer (default: %(default)s)")
    speed_parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"),
                              help="where the JSON and Markdown go (default: %(default)s)")

    mortal_parser = benchmarks.add_parser(
        "mortal", help="FF vs BP on faulty hardware (black box, noise, drift, few bits); distillation",
        description=mortal.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(mortal_parser)
    mortal_parser.add_argument("--hidden", type=int, nargs="+", default=[500, 500],
                               help="hidden layers of FF and BP (default: %(default)s)")
    mortal_parser.add_argument("--epochs", type=int, default=3, help="epochs per run (default: %(default)s)")
    mortal_parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    mortal_parser.add_argument("--labelled", type=int, default=1000,
                               help="labels the distillation student has (default: %(default)s)")
    mortal_parser.add_argument("--shard-size", type=int, default=5000,
                               help="images in each of the two co-distillation shards (default: %(default)s)")
    add_output_arguments(mortal_parser, "do not print each fault's errors")

    dream = commands.add_parser("dream", help="clamp a label on a trained deep belief net and let it generate digits")
    dream.add_argument("checkpoint", type=Path, nargs="?", default=Path("runs/dbn/checkpoint.pt"),
                       help="a checkpoint of `brainlearn train dbn` (default: %(default)s)")
    dream.add_argument("--label", type=int, nargs="+", default=None, help="labels to clamp (default: all)")
    dream.add_argument("--count", type=int, default=10, help="dreams per label (default: %(default)s)")
    dream.add_argument("--steps", type=int, default=1000, help="Gibbs steps in the top RBM (default: %(default)s)")
    dream.add_argument("--start-temperature", type=float, default=2.0,
                       help="temperature the chain starts at, cooling to 1 over its first half "
                            "(1: no annealing; default: %(default)s)")
    dream.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    dream.add_argument("--out", type=Path, default=Path("dreams.png"), help="PNG grid to write (default: %(default)s)")
    add_device_argument(dream)

    probe_parser = commands.add_parser("probe", help="record units of a trained net: activities and tuning curves",
                                       description=probe.__doc__,
                                       formatter_class=argparse.RawDescriptionHelpFormatter)
    probe_parser.add_argument("checkpoint", type=Path,
                              help="a checkpoint.pt or model.safetensors written by `brainlearn train`")
    add_data_arguments(probe_parser, default=None, default_help="the one it was trained on")
    add_device_argument(probe_parser)
    probe_parser.add_argument("--layer", nargs="+", default=None, help="layers to record (default: all)")
    probe_parser.add_argument("--units", type=int, nargs="+", default=None, help="unit indices (default: all)")
    probe_parser.add_argument("--count", type=int, default=1000, help="test images to show (default: %(default)s)")
    probe_parser.add_argument("--out", type=Path, default=Path("probes"), help="output folder (default: %(default)s)")

    report_parser = commands.add_parser("report", help="regenerate RESULTS.md and the README's results from the JSON",
                                        description=report.__doc__,
                                        formatter_class=argparse.RawDescriptionHelpFormatter)
    report_parser.add_argument("--results-dir", type=Path, default=Path("benchmarks/results"),
                               help="folder of benchmark JSON files; RESULTS.md is written there (default: "
                                    "%(default)s)")
    report_parser.add_argument("--readme", type=Path, default=Path("README.md"),
                               help="README whose <!-- report:start/end --> block is rewritten (default: "
                                    "%(default)s; skipped if absent)")
    return parser


def add_bench_arguments(parser: argparse.ArgumentParser, lr_help: str, full_help: str,
                        lr_nargs: str | None = None) -> None:
    add_data_arguments(parser)
    parser.add_argument("--full", action="store_true", help=f"mnist only: the paper's configuration ({full_help})")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="one run of each per seed "
                        "(default: %(default)s)")
    parser.add_argument("--epochs", type=int, help="override the preset's epochs")
    parser.add_argument("--hidden", type=int, nargs="+", help="override the preset's hidden layer sizes")
    parser.add_argument("--batch-size", type=int, help="(default: the preset's, else 100)")
    parser.add_argument("--lr", type=float, nargs=lr_nargs, help=f"{lr_help} (default: the preset's)")
    parser.add_argument("--bp-lr", type=float, help="the BP twin's Adam learning rate (default: the preset's)")
    parser.add_argument("--keep-runs", action="store_true", help="also keep each run's checkpoint and log")
    add_device_argument(parser)
    parser.add_argument("--precision", choices=("fp32", "tf32"), default="fp32",
                        help="float32 matmuls on CUDA: exact, or TensorFloat-32 (default: %(default)s)")
    add_output_arguments(parser)


def add_output_arguments(parser: argparse.ArgumentParser, quiet_help: str = "no progress bars") -> None:
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"),
                        help="where the JSON, Markdown and PNG go (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help=quiet_help)


def run_wave_bench(args: argparse.Namespace, parser: argparse.ArgumentParser, command: str) -> dict:
    paper = {"lengths": [100, 200, 400, 700, 1000], "steps": 60000, "channels": 27}
    default = {"lengths": [100, 200, 400], "steps": 1000, "channels": 8}
    chosen = {key: getattr(args, key) if getattr(args, key) is not None else (paper if args.full else default)[key]
              for key in default}
    if min(chosen["lengths"]) < 2 or min(chosen["channels"], args.positions, args.irnn_hidden, args.copy_delay,
                                         args.copy_steps, args.speed_length) < 1 or args.solve_mse <= 0:
        parser.error("need lengths >= 2, positive sizes, --copy-delay and --copy-steps >= 1, --solve-mse > 0")
    config = config_from_args(wave_rnn.SequenceTrainConfig, argparse.Namespace(**{**vars(args), "steps": chosen[
        "steps"]}), parser)
    return bench.wave_vs_irnn(chosen["lengths"], args.copy_delay, config, args.copy_steps, chosen["channels"],
                              args.positions, args.irnn_hidden, args.solve_mse, args.out_dir, command,
                              progress=not args.quiet, speed_length=args.speed_length)


def run_scaling_bench(args: argparse.Namespace, parser: argparse.ArgumentParser, command: str) -> dict:
    if args.train_size < 100 or args.epochs < 1:
        parser.error("the scaling benchmark needs --train-size >= 100 and --epochs >= 1")
    load_dataset(args.dataset, args.data_dir, download=not args.no_download)  # every process then finds the files
    return scaling.scaling_benchmark(args.dataset, args.data_dir, args.train_size, args.epochs, args.out_dir, command,
                                     progress=not args.quiet)


def run_mortal_bench(args: argparse.Namespace, parser: argparse.ArgumentParser, command: str) -> dict:
    data = load_dataset(args.dataset, args.data_dir, download=not args.no_download)
    if len(args.hidden) < 2 or min(args.hidden) < 1 or args.epochs < 1:
        parser.error("need two or more positive --hidden sizes (the black box sits before layer 2) and --epochs >= 1")
    if not 1 <= args.labelled <= len(data.x_train) or not 1 <= 2 * args.shard_size <= len(data.x_train):
        parser.error(f"--labelled and 2 x --shard-size must be within the {len(data.x_train)} training images")
    config = TrainConfig(epochs=args.epochs, seed=args.seed, eval_every=0)
    return mortal.mortal_benchmark(data, tuple(args.hidden), config, args.labelled, args.shard_size, args.out_dir,
                                   command, progress=not args.quiet)


def run_local_bench(args: argparse.Namespace, parser: argparse.ArgumentParser, command: str) -> dict:
    preset = bench.PRESETS["local-vs-bp"].get(args.dataset, bench.PRESETS["local-vs-bp"]["cifar10"])
    chosen = {key: getattr(args, key) if getattr(args, key) is not None else preset[key] for key in preset}
    if min(args.depths) < 1 or min(chosen.values()) < 1:
        parser.error("--depths, --maps, --field and --epochs must be positive")
    try:
        train_config = TrainConfig(epochs=chosen["epochs"], batch_size=args.batch_size, lr_schedule="cooldown")
        rff_config = RecurrentFFConfig(lr=args.lr, objective=args.objective, local_field=chosen["field"])
        BackpropConfig(lr=args.bp_lr)
        local.check_field(chosen["field"])
    except ValueError as error:
        parser.error(str(error))
    data = load_dataset(args.dataset, args.data_dir, download=not args.no_download)
    try:
        local.square_image(data.n_features)
    except ValueError as error:
        parser.error(str(error))
    return bench.local_vs_bp(data, args.seeds, train_config, tuple(args.depths), chosen["maps"], rff_config,
                             args.bp_lr, args.out_dir, command, progress=not args.quiet, keep_runs=args.keep_runs)


def run_local_speed_bench(args: argparse.Namespace, parser: argparse.ArgumentParser, command: str) -> dict:
    try:
        local.check_field(args.field)
    except ValueError as error:
        parser.error(str(error))
    if args.batch_size < 1 or args.repeats < 1:
        parser.error("need --batch-size >= 1 and --repeats >= 1")
    return bench.local_speed_benchmark(args.field, args.batch_size, args.repeats, args.out_dir, command)


def run_bench(args: argparse.Namespace, parser: argparse.ArgumentParser, command: str) -> None:
    run = {"wave-rnn": run_wave_bench, "scaling": run_scaling_bench, "mortal": run_mortal_bench,
           "local-vs-bp": run_local_bench, "local-speed": run_local_speed_bench}.get(
        args.benchmark, run_learner_bench)
    result = run(args, parser, command)
    stem = args.out_dir / f"{result['benchmark']}_{result['dataset']}"
    print(stem.with_suffix(".md").read_text())
    print(f"wrote {stem}.json, {stem}.md and figures in {args.out_dir}")


def run_learner_bench(args: argparse.Namespace, parser: argparse.ArgumentParser, command: str) -> dict:
    """A local learner beside its backprop twin, from the preset for the data set and the flags given."""
    if args.full and args.dataset != "mnist":
        parser.error("--full is the paper's MNIST configuration; use it with --dataset mnist")
    preset = bench.PRESETS[args.benchmark]["mnist-full" if args.full else args.dataset]

    def given_or_preset(flag: str, default=None):
        value = getattr(args, flag)
        return value if value is not None else preset.get(flag, default)

    bp_lr = given_or_preset("bp_lr")
    device_or_usage_error(args.device, parser)
    options = {"progress": not args.quiet, "keep_runs": args.keep_runs}
    try:
        if args.benchmark == "eqprop-vs-bp":
            if args.hidden is not None and args.lr is None:
                parser.error("with --hidden, give --lr: one learning rate per weight matrix")
            architectures = (preset["architectures"] if args.hidden is None
                             else [{"hidden": args.hidden, "lr": args.lr, "epochs": 10}])
            overrides = {key: getattr(args, key) for key in ("free_steps", "nudged_steps", "beta", "nudging")
                         if getattr(args, key) is not None}
            train_configs = [TrainConfig(epochs=args.epochs if args.epochs is not None else arch["epochs"],
                                         batch_size=given_or_preset("batch_size", 100), lr_schedule="cooldown",
                                         device=args.device, precision=args.precision)
                             for arch in architectures]
            ep_configs = [EquilibriumPropConfig(**{**{k: v for k, v in arch.items() if k != "epochs"}, **overrides})
                          for arch in architectures]
        else:
            train_config = TrainConfig(epochs=given_or_preset("epochs"), batch_size=given_or_preset("batch_size", 100),
                                       lr_schedule="cooldown", eval_every=1, device=args.device,
                                       precision=args.precision)
            hidden = tuple(given_or_preset("hidden"))
            lr = given_or_preset("lr")
            bp_config = BackpropConfig(hidden=hidden, lr=bp_lr)
            if args.benchmark in ("ff-vs-bp", "ff-jitter"):
                negatives = getattr(args, "negatives", "hard")  # ff-jitter keeps the default
                learner_config = ForwardForwardConfig(hidden=hidden, lr=lr, negatives=negatives)
            elif args.benchmark == "rff-vs-bp":
                learner_config = RecurrentFFConfig(hidden=hidden, lr=lr, negatives=args.negatives)
                options["objectives"] = tuple(dict.fromkeys(args.objectives))
            else:
                learner_config = DeepBeliefNetConfig(
                    hidden=hidden, lr=lr, top_sleep=given_or_preset("top_sleep"),
                    discriminative=given_or_preset("discriminative"),
                    momentum_warmup_steps=preset.get("momentum_warmup_steps", DeepBeliefNetConfig.momentum_warmup_steps))
    except ValueError as error:
        parser.error(str(error))
    data = load_dataset(args.dataset, args.data_dir, download=not args.no_download)
    if args.benchmark == "eqprop-vs-bp":
        return bench.eqprop_vs_bp(data, args.seeds, train_configs, ep_configs, bp_lr, args.out_dir, command, **options)
    common = (data, args.seeds, train_config, learner_config, bp_config, args.out_dir, command)
    if args.benchmark == "ff-vs-bp":
        return bench.ff_vs_bp(*common, **options)
    if args.benchmark == "rff-vs-bp":
        return bench.rff_vs_bp(*common, **options)
    if args.benchmark == "ff-jitter":
        if args.jitter < 1:
            parser.error("--jitter must be >= 1")
        return bench.ff_jitter(*common, **options, jitter=args.jitter)
    if args.dream_steps < 1 or args.dream_temperature < 1:
        parser.error("need --dream-steps >= 1 and --dream-temperature >= 1")
    return bench.dbn_vs_bp(*common, **options, dream_steps=args.dream_steps, dream_temperature=args.dream_temperature,
                           ais_steps=args.ais_steps)


def without_option(argv: list[str], option: str) -> list[str]:
    """`argv` without `option VALUE` / `option=VALUE`."""
    kept, skip = [], False
    for word in argv:
        if not skip and word != option and not word.startswith(option + "="):
            kept.append(word)
        skip = word == option
    return kept


def device_or_usage_error(name: str, parser: argparse.ArgumentParser) -> torch.device:
    """The device `name` means here; one that is not there is a usage error (exit 2)."""
    try:
        return resolve_device(name)
    except ValueError as error:
        parser.error(str(error))


def given_config_values(config_class: type, argv: list[str]) -> dict:
    """The fields of `config_class` that `argv` sets explicitly, with their parsed values."""
    named = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    add_config_arguments(named, config_class, "", defaults=False)
    return vars(named.parse_known_args(argv)[0])


def resumed_configs(args: argparse.Namespace, parser: argparse.ArgumentParser, argv: list[str]):
    """The stored run's (train config, learner config, data set), with the flags this command line gives on top.
    A flag that would change the run's architecture or recipe is refused, listing the differences."""
    checkpoint = load_checkpoint(args.run_dir / CHECKPOINT)
    dataset = args.dataset or checkpoint["dataset"]
    try:
        train_config = TrainConfig(**{**checkpoint["train_config"], **given_config_values(TrainConfig, argv)})
        learner_config = config_from_dict(args.algorithm, {
            **checkpoint["learner_config"], **given_config_values(ALGORITHMS[args.algorithm].Config, argv)})
        check_resumable(checkpoint, args.algorithm, learner_config, train_config, dataset, args.run_dir)
    except ValueError as error:
        parser.error(str(error))
    return train_config, learner_config, dataset, checkpoint["epoch"]


def run_train(args: argparse.Namespace, parser: argparse.ArgumentParser, argv: list[str]) -> int:
    """Check everything that can be checked here, then train (in this process, or in --nproc processes)."""
    if args.nproc < 1 or args.dist_timeout <= 0:
        parser.error("--nproc must be >= 1 and --dist-timeout > 0")
    launcher = args.nproc > 1 and "WORLD_SIZE" not in os.environ
    done = 0
    if args.resume:
        if not (args.run_dir / CHECKPOINT).is_file():
            raise RunFolderError(f"nothing to resume: no {CHECKPOINT} in {args.run_dir}")
        train_config, learner_config, dataset, done = resumed_configs(args, parser, argv)
    else:
        train_config = config_from_args(TrainConfig, args, parser)
        learner_config = config_from_args(ALGORITHMS[args.algorithm].Config, args, parser)
        dataset = args.dataset or "digits"
    device_or_usage_error(train_config.device, parser)
    if train_config.batch_size % args.nproc:
        parser.error(f"--batch-size {train_config.batch_size} (the global batch) must divide among --nproc "
                     f"{args.nproc} processes")
    if done == train_config.epochs:
        print(f"nothing to train: {args.run_dir} already holds all {done} epochs (give --epochs N > {done} to "
              "extend it)", file=sys.stderr)
        return 0
    data = load_dataset(dataset, args.data_dir, download=not args.no_download)  # downloads once, before any process
    try:  # some settings can only be checked against the data (local fields need square images)
        learner = make_learner(args.algorithm, data.n_features, data.n_classes, learner_config, train_config.seed)
    except ValueError as error:
        parser.error(str(error))
    if launcher:  # start the processes; each comes back here and trains
        check_usable(args.run_dir, args.resume, args.overwrite)
        argv = [*without_option(argv, "--nproc"), "--dataset", dataset]
        return subprocess.call(distributed.torchrun_command(args.nproc, argv))
    world = distributed.init_from_env(args.dist_timeout)
    history = fit(learner, data, train_config, run_dir=args.run_dir, resume=args.resume, world=world,
                  overwrite=args.overwrite)
    if world.is_main:
        print({k: v for k, v in history[-1].items() if k.startswith("error")})
        warning = chance_warning(history, data.n_classes)
        if warning:
            print(f"brainlearn: warning: {warning}", file=sys.stderr)
    distributed.shutdown(world)
    return 0


def open_trained(args: argparse.Namespace, parser: argparse.ArgumentParser):
    """(learner, data set) for eval and probe: the data set it was trained on unless --dataset names one, checked
    against the learner's sizes."""
    device = device_or_usage_error(args.device, parser)
    learner, trained_on = learner_from_file(args.checkpoint, device)
    name = args.dataset or trained_on
    if not name:
        parser.error(f"{args.checkpoint} does not say which data set it was trained on; give --dataset")
    data = load_dataset(name, args.data_dir, download=not args.no_download)
    check_fits(learner, data, str(args.checkpoint))
    return learner, data.to(device)


def run_dream(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    device = device_or_usage_error(args.device, parser)
    learner, _ = learner_from_file(args.checkpoint, device)
    if learner.name != "dbn":
        parser.error(f"{args.checkpoint} holds a {learner.name!r} run; dreaming needs a 'dbn' one")
    labels = args.label if args.label is not None else list(range(learner.n_classes))
    if (args.count < 1 or args.steps < 1 or args.start_temperature < 1
            or not all(0 <= label < learner.n_classes for label in labels)):
        parser.error(f"need --count >= 1, --steps >= 1, --start-temperature >= 1 and labels in "
                     f"0..{learner.n_classes - 1}")
    clamped = torch.tensor(labels).repeat_interleave(args.count)
    dreams = learner.dream(clamped, args.steps, torch.Generator(device).manual_seed(args.seed),
                           args.start_temperature).cpu()
    side = math.isqrt(learner.n_inputs)
    plots.image_grid(dreams.view(len(labels), args.count, -1), (side, side), args.out,
                     f"Dreams after {args.steps} Gibbs steps from T = {args.start_temperature:g}",
                     row_labels=[str(label) for label in labels])
    print(f"wrote {args.out}: {args.count} dreams for each of labels {labels}")


def run_probe(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if args.count < 1:
        parser.error("--count must be >= 1")
    learner, data = open_trained(args, parser)
    x, labels = data.x_test[: args.count], data.y_test[: args.count]
    try:
        written = probe.probe_to_files(learner, x, labels, args.out, args.layer, args.units)
    except ValueError as error:
        parser.error(str(error))
    print(f"recorded {len(x)} {data.name} test images; wrote {', '.join(str(path) for path in written)}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            return run_train(args, parser, argv)
        elif args.command == "eval":
            learner, data = open_trained(args, parser)
            learner.eval()
            errors = learner.evaluate(data.x_test, data.y_test, full=True)
            for method, error in errors.items():
                print(f"{method}: {100 * error:.2f}% ({data.name} test set, {len(data.y_test)} images)")
        elif args.command == "dream":
            run_dream(args, parser)
        elif args.command == "probe":
            run_probe(args, parser)
        elif args.command == "report":
            report.write_report(args.results_dir, args.readme)
            print(f"wrote {args.results_dir / 'RESULTS.md'}")
        else:
            run_bench(args, parser, shlex.join(["brainlearn", *argv]))
    except (DataError, DivergedError, DistributedError, RunFolderError, ValueError) as error:
        print(f"brainlearn: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # a file or folder named on the command line that cannot be read or written
        print(f"brainlearn: error: {os_problem(error, 'cannot use', 'check the path and its permissions')}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("brainlearn: interrupted; the last checkpoint is kept (continue with --resume)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
