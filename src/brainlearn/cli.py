"""`brainlearn train | eval | bench | dream | generate | probe | report`: every learner flag comes from a config dataclass field.

Bad flags or values print a message and exit with code 2 (argparse's convention); a data
problem, a file that cannot be read or written, a run folder in use, or a diverging run prints
one clear line and exits with code 1. Neither prints a traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import subprocess
import sys
from pathlib import Path

import torch

from . import distributed, plots, probe, report
from .algorithms import ALGORITHMS
from .arguments import (add_config_arguments, add_data_arguments, add_device_argument, config_from_args,
                        device_or_usage_error)
from .data import DataError, load_dataset
from .experiments import EXPERIMENTS
from .experiments.ff_sequence import generate_text, load_model
from .distributed import DistributedError
from .runfolder import CHECKPOINT, RunFolderError, check_usable, os_problem
from .train import (DivergedError, TrainConfig, chance_warning, check_fits, check_resumable,
                    config_from_dict, fit, learner_from_file, load_checkpoint, make_learner)

TEST_HEADLINES = ("error", "log_likelihood")  # what `train` prints of the last test: an RBM has no error

EPILOG = """examples:
  brainlearn train ff --dataset digits --epochs 30 --run-dir runs/ff
  brainlearn train ff --dataset mnist --data-dir ../shared/data --run-dir runs/ff --resume
  brainlearn train ff --dataset mnist --nproc 2 --run-dir runs/ff2       # torchrun, 2 processes
  brainlearn eval runs/ff/checkpoint.pt
  brainlearn bench ff-vs-bp --dataset digits
  brainlearn train dbn --dataset digits --epochs 40 --batch-size 20 --run-dir runs/dbn
  brainlearn dream runs/dbn/checkpoint.pt --label 2 --out dreams.png
  brainlearn bench ff-sequence --data-dir DIR --save-models models
  brainlearn generate models/teacher-forcing.safetensors --prompt "it was a fine day" --length 200
  brainlearn probe runs/eqprop/checkpoint.pt --layer layer1 --units 0 1 2 --out probes/eqprop
  brainlearn report
"""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the message and where to read more), exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="brainlearn", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Learning without backpropagation, each algorithm beside a backprop twin.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    add_train_commands(commands.add_parser("train", help="train one learner, with checkpoints and --resume"))

    evaluate = commands.add_parser("eval", help="test error of a saved checkpoint, by every evaluation method")
    evaluate.add_argument("checkpoint", type=Path,
                          help="a checkpoint.pt or model.safetensors written by `brainlearn train`")
    add_data_arguments(evaluate, default=None, default_help="the one it was trained on")
    add_device_argument(evaluate)

    bench_parser = commands.add_parser("bench", help="experiments: each learner beside its backprop twin, each "
                                                     "published claim checked")
    benchmarks = bench_parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    for name, experiment in EXPERIMENTS.items():
        experiment.add_arguments(benchmarks.add_parser(name, help=experiment.help, description=experiment.description,
                                                       formatter_class=argparse.RawDescriptionHelpFormatter))

    dream = commands.add_parser("dream", help="clamp a label on a trained deep belief net and let it generate digits "
                                              "(or let a lone RBM generate images)")
    dream.add_argument("checkpoint", type=Path, nargs="?", default=Path("runs/dbn/checkpoint.pt"),
                       help="a checkpoint of `brainlearn train dbn` or `train rbm` (default: %(default)s)")
    dream.add_argument("--label", type=int, nargs="+", default=None,
                       help="labels to clamp (default: all; an RBM has none)")
    dream.add_argument("--count", type=int, default=10, help="dreams per label (default: %(default)s)")
    dream.add_argument("--steps", type=int, default=1000,
                       help="Gibbs steps in the top RBM, or the RBM (default: %(default)s)")
    dream.add_argument("--start-temperature", type=float, default=2.0,
                       help="temperature the chain starts at, cooling to 1 over its first half "
                            "(1: no annealing; default: %(default)s)")
    dream.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    dream.add_argument("--out", type=Path, default=Path("dreams.png"), help="PNG grid to write (default: %(default)s)")
    add_device_argument(dream)

    generate = commands.add_parser("generate", help="let an FF sequence net write text after a prompt",
                                   description="Print the prompt and the text a net saved by `brainlearn bench "
                                               "ff-sequence --save-models DIR` writes after it, one symbol at a "
                                               "time, each sampled from softmax(G / T) over the candidates.")
    generate.add_argument("model", type=Path, help="a .safetensors file written by --save-models")
    generate.add_argument("--prompt", required=True, help="the text to continue (at least 9 symbols of the net's "
                                                           "alphabet: a-z, space, comma, semicolon, full stop)")
    generate.add_argument("--length", type=int, default=200, help="symbols to write (default: %(default)s)")
    generate.add_argument("--temperature", type=float, help="T of softmax(G / T) (default: the net's own)")
    generate.add_argument("--seed", type=int, default=0, help="seed of the sampling (default: %(default)s)")
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


def add_train_commands(train: argparse.ArgumentParser) -> None:
    """`brainlearn train ALGORITHM`: one subcommand per learner, one flag per field of its config and TrainConfig."""
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


def run_bench(args: argparse.Namespace, parser: argparse.ArgumentParser, command: str) -> None:
    result = EXPERIMENTS[args.benchmark].run_from_args(args, parser, command)
    stem = args.out_dir / f"{result['benchmark']}_{result['dataset']}"
    print(stem.with_suffix(".md").read_text())
    print(f"wrote {stem}.json, {stem}.md and figures in {args.out_dir}")


def without_option(argv: list[str], option: str) -> list[str]:
    """`argv` without `option VALUE` / `option=VALUE`."""
    kept, skip = [], False
    for word in argv:
        if not skip and word != option and not word.startswith(option + "="):
            kept.append(word)
        skip = word == option
    return kept


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
    device_or_usage_error(train_config.device, parser, args.nproc if launcher else None)
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
        print({k: v for k, v in history[-1].items() if k.startswith(TEST_HEADLINES)})
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
    """Dreams of a deep belief net, a row per clamped label, or of a lone RBM, which has no labels: one row."""
    device = device_or_usage_error(args.device, parser)
    learner, _ = learner_from_file(args.checkpoint, device)
    if learner.name not in ("dbn", "rbm"):
        parser.error(f"{args.checkpoint} holds a {learner.name!r} run; dreaming needs a 'dbn' or 'rbm' one")
    labels = []  # an RBM has no label units: one row of dreams
    if learner.name == "dbn":
        labels = args.label if args.label is not None else list(range(learner.n_classes))
    elif args.label is not None:
        parser.error(f"{args.checkpoint} holds an 'rbm' run, which has no label units: drop --label")
    needs = ["--count >= 1", "--steps >= 1", "--start-temperature >= 1"] + (
        [f"labels in 0..{learner.n_classes - 1}"] if labels else [])
    if (args.count < 1 or args.steps < 1 or args.start_temperature < 1
            or not all(0 <= label < learner.n_classes for label in labels)):
        parser.error(f"need {', '.join(needs[:-1])} and {needs[-1]}")
    generator = torch.Generator(device).manual_seed(args.seed)
    what = torch.tensor(labels).repeat_interleave(args.count) if labels else args.count
    dreams = learner.dream(what, args.steps, generator, args.start_temperature).cpu()
    side = math.isqrt(learner.n_inputs)
    plots.image_grid(dreams.view(-1, args.count, learner.n_inputs), (side, side), args.out,
                     f"Dreams after {args.steps} Gibbs steps from T = {args.start_temperature:g}",
                     row_labels=[str(label) for label in labels] or None)
    print(f"wrote {args.out}: {args.count} dreams" + (f" for each of labels {labels}" if labels else ""))


def run_generate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    model, alphabet = load_model(args.model)
    try:
        print(generate_text(model, alphabet, args.prompt, args.length, args.seed, args.temperature))
    except ValueError as error:
        parser.error(str(error))


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
            metrics = learner.evaluate(data.x_test, data.y_test, full=True)
            for name, value in metrics.items():
                shown = f"{100 * value:.2f}%" if name.startswith("error") else f"{value:.4g}"
                print(f"{name}: {shown} ({data.name} test set, {len(data.y_test)} images)")
        elif args.command == "dream":
            run_dream(args, parser)
        elif args.command == "generate":
            run_generate(args, parser)
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
