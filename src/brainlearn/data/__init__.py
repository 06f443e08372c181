"""Data sets as float tensors in [0, 1], flattened, with integer labels.

`load_dataset("digits")` needs no download (scikit-learn's bundled 8x8 digits);
`load_dataset("mnist", data_dir)` reads the four IDX files and `load_dataset("cifar10", data_dir)`
the python-version archive, downloading them when missing.
The data directory is, in order: the `data_dir` argument (CLI `--data-dir`), the
`BRAINLEARN_DATA` environment variable, else a per-user cache folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .download import DataError

__all__ = ["DataError", "Dataset", "DATASETS", "load_dataset", "resolve_data_dir"]

DATASETS = ("digits", "mnist", "cifar10")


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: torch.Tensor  # (n, features) float32 in [0, 1]
    y_train: torch.Tensor  # (n,) int64
    x_test: torch.Tensor
    y_test: torch.Tensor
    image_shape: tuple[int, ...]  # (height, width), or (channels, height, width) for colour
    n_classes: int = 10

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]

    def to(self, device: torch.device) -> "Dataset":
        """The same data set with its tensors on `device` (a tensor already there is not copied)."""
        return replace(self, **{name: getattr(self, name).to(device)
                                for name in ("x_train", "y_train", "x_test", "y_test")})


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """`data_dir`, else $BRAINLEARN_DATA, else $XDG_CACHE_HOME/brainlearn (~/.cache/brainlearn)."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    if os.environ.get("BRAINLEARN_DATA"):
        return Path(os.environ["BRAINLEARN_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "brainlearn"


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = torch.tensor(bunch.data, dtype=torch.float32) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.int64)
    # A fixed, stratified 75/25 split so every run and every learner sees the same test set.
    idx_train, idx_test = train_test_split(
        torch.arange(len(y)).numpy(), test_size=0.25, random_state=0, stratify=y.numpy()
    )
    return Dataset("digits", x[idx_train], y[idx_train], x[idx_test], y[idx_test], (8, 8))


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, download: bool = True) -> Dataset:
    if name == "digits":
        return _load_digits()
    if name == "mnist":
        from .mnist import load_mnist

        return load_mnist(resolve_data_dir(data_dir) / "mnist", download=download)
    if name == "cifar10":
        from .cifar import load_cifar10

        return load_cifar10(resolve_data_dir(data_dir) / "cifar10", download=download)
    raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
