"""`brainlearn train | eval | bench`: every flag comes from a config dataclass field.

Bad flags or values print a message and exit with code 2 (argparse's convention); a data
problem or a diverging run prints one clear line and exits with code 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import typing
from pathlib import Path

from . import bench
from .algorithms import ALGORITHMS
from .data import DATASETS, DataError, load_dataset
from .train import DivergedError, TrainConfig, fit, learner_from_checkpoint, load_checkpoint, make_learner

EPILOG = """examples:
  brainlearn train ff --dataset digits --epochs 30 --run-dir runs/ff
  brainlearn train ff --dataset mnist --data-dir ../shared/data --run-dir runs/ff --resume
  brainlearn eval runs/ff/checkpoint.pt
  brainlearn bench ff-vs-bp --dataset digits
"""


def add_config_arguments(parser: argparse.ArgumentParser, config_class: type, title: str) -> None:
    """One --flag per dataclass field, typed, with the field's help and choices."""
    group = parser.add_argument_group(title)
    hints = typing.get_type_hints(config_class)
    for f in dataclasses.fields(config_class):
        kind = hints[f.name]
        options = {"help": f"{f.metadata.get('help', '')} (default: %(default)s)", "default": f.default,
                   "dest": f.name}
        if typing.get_origin(kind) is tuple:
            options.update(nargs="+", type=typing.get_args(kind)[0], metavar="N")
        else:
            options.update(type=kind, choices=f.metadata.get("choices"))
        group.add_argument("--" + f.name.replace("_", "-"), **options)


def config_from_args(config_class: type, args: argparse.Namespace, parser: argparse.ArgumentParser):
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(config_class) if hasattr(args, f.name)}
    try:
        return config_class(**values)
    except ValueError as error:
        parser.error(str(error))  # exits with code 2


def add_data_arguments(parser: argparse.ArgumentParser, default: str | None = "digits") -> None:
    parser.add_argument("--dataset", choices=DATASETS, default=default,
                        help="digits: scikit-learn's bundled 8x8 digits (no download); mnist: the IDX files "
                             "(default: %(default)s)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder holding mnist/ (default: $BRAINLEARN_DATA, else ~/.cache/brainlearn; "
                             "missing files are downloaded and checksummed)")
    parser.add_argument("--no-download", action="store_true", help="fail instead of downloading missing files")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="brainlearn", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Learning without backpropagation, each algorithm beside a backprop twin.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train one learner, with checkpoints and --resume")
    algorithms = train.add_subparsers(dest="algorithm", required=True, metavar="ALGORITHM")
    for name, learner in ALGORITHMS.items():
        doc = sys.modules[learner.__module__].__doc__
        sub = algorithms.add_parser(name, help=doc.strip().splitlines()[0], description=doc,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        add_data_arguments(sub)
        sub.add_argument("--run-dir", type=Path, default=Path("runs") / name,
                         help="where checkpoint.pt and metrics.jsonl go (default: %(default)s)")
        sub.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its checkpoint")
        add_config_arguments(sub, TrainConfig, "training")
        add_config_arguments(sub, learner.Config, f"{name} learner")

    evaluate = commands.add_parser("eval", help="test error of a saved checkpoint, by every evaluation method")
    evaluate.add_argument("checkpoint", type=Path, help="a checkpoint.pt written by `brainlearn train`")
    add_data_arguments(evaluate, default=None)

    bench_parser = commands.add_parser("bench", help="benchmarks that compare a learner with its backprop twin")
    benchmarks = bench_parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    ff_vs_bp = benchmarks.add_parser("ff-vs-bp", help="Forward-Forward vs backprop: test errors and speed",
                                     description=bench.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_bench_arguments(ff_vs_bp)
    return parser


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    parser.add_argument("--full", action="store_true",
                        help="mnist only: Hinton's configuration, 4 hidden layers of 2000 for 60 epochs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="one run of each per seed "
                        "(default: %(default)s)")
    parser.add_argument("--epochs", type=int, help="override the preset's epochs")
    parser.add_argument("--hidden", type=int, nargs="+", help="override the preset's hidden layer sizes")
    parser.add_argument("--batch-size", type=int, default=100, help="(default: %(default)s)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate of both (default: %(default)s)")
    parser.add_argument("--negatives", choices=("hard", "random"), default="hard",
                        help="FF negative labels (default: %(default)s)")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"),
                        help="where the JSON, Markdown and PNG go (default: %(default)s)")
    parser.add_argument("--keep-runs", action="store_true", help="also keep each run's checkpoint and log")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run_bench(args: argparse.Namespace, parser: argparse.ArgumentParser, command: str) -> dict:
    preset = bench.PRESETS["mnist-full" if args.full else args.dataset]
    if args.full and args.dataset != "mnist":
        parser.error("--full is Hinton's MNIST configuration; use it with --dataset mnist")
    try:
        train_config = TrainConfig(epochs=args.epochs or preset["epochs"], batch_size=args.batch_size,
                                   lr_schedule="cooldown", eval_every=1)
        ff_config = bench.ForwardForwardConfig(hidden=tuple(args.hidden or preset["hidden"]), lr=args.lr,
                                               negatives=args.negatives)
    except ValueError as error:
        parser.error(str(error))
    data = load_dataset(args.dataset, args.data_dir, download=not args.no_download)
    result = bench.compare(data, args.seeds, train_config, ff_config, args.out_dir, command,
                           progress=not args.quiet, keep_runs=args.keep_runs)
    print(bench.markdown(result))
    print(f"wrote {args.out_dir}/ff_vs_bp_{data.name}.json, .md and figures")
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            train_config = config_from_args(TrainConfig, args, parser)
            learner_config = config_from_args(ALGORITHMS[args.algorithm].Config, args, parser)
            data = load_dataset(args.dataset, args.data_dir, download=not args.no_download)
            learner = make_learner(args.algorithm, data.n_features, data.n_classes, learner_config, train_config.seed)
            history = fit(learner, data, train_config, run_dir=args.run_dir, resume=args.resume)
            print({k: v for k, v in history[-1].items() if k.startswith("error")})
        elif args.command == "eval":
            checkpoint = load_checkpoint(args.checkpoint)
            learner = learner_from_checkpoint(checkpoint)
            data = load_dataset(args.dataset or checkpoint["dataset"], args.data_dir, download=not args.no_download)
            errors = learner.evaluate(data.x_test, data.y_test, full=True)
            for method, error in errors.items():
                print(f"{method}: {100 * error:.2f}% ({data.name} test set, {len(data.y_test)} images)")
        else:
            run_bench(args, parser, shlex.join(["brainlearn", *argv]))
    except (DataError, DivergedError, FileNotFoundError, ValueError) as error:
        print(f"brainlearn: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("brainlearn: interrupted; the last checkpoint is kept (continue with --resume)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
