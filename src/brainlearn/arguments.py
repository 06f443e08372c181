"""Command-line arguments shared by `brainlearn`'s commands and the experiments' subcommands: one flag per
config dataclass field, the data set, the device and the result folder."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path

import torch

from .data import DATASETS
from .train import resolve_device


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
        options = {"help": f"{f.metadata.get('help', '').replace('%', '%%')} (default: %(default)s)",
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


def device_or_usage_error(name: str, parser: argparse.ArgumentParser, processes: int | None = None) -> torch.device:
    """The device `name` means here (for each of `processes` processes); one that is not there is a usage error
    (exit 2)."""
    try:
        return resolve_device(name, processes)
    except ValueError as error:
        parser.error(str(error))


def add_data_arguments(parser: argparse.ArgumentParser, default: str | None = "digits",
                       default_help: str = "%(default)s") -> None:
    parser.add_argument("--dataset", choices=DATASETS, default=default,
                        help="digits: scikit-learn's bundled 8x8 digits (no download); mnist: the IDX files "
                             f"(default: {default_help})")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder holding mnist/ (default: $BRAINLEARN_DATA, else ~/.cache/brainlearn; "
                             "missing files are downloaded and checksummed)")
    parser.add_argument("--no-download", action="store_true", help="fail instead of downloading missing files")


def add_output_arguments(parser: argparse.ArgumentParser, quiet_help: str = "no progress bars") -> None:
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"),
                        help="where the JSON, Markdown and PNG go (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help=quiet_help)
