"""MNIST (LeCun, Cortes & Burges) from the four standard IDX .gz files."""

from __future__ import annotations

import gzip
from functools import partial
from pathlib import Path

import numpy as np
import torch

from .download import DataError, download_verified, verify

MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
]

# sha256 of the decompressed content (the .gz bytes differ between recompressed copies).
SHA256 = {
    "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

_IDX_DTYPE = {0x08: np.uint8}


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (magic 0x0000 dtype ndim, big-endian dims, then the data)."""
    with gzip.open(path, "rb") as stream:
        raw = stream.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPE:
        raise DataError(f"{path} is not an IDX file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    if len(raw) - offset != int(np.prod(dims)):
        raise DataError(f"{path}: header promises {dims} but holds {len(raw) - offset} bytes of data")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def ensure_file(folder: Path, name: str, download: bool, mirrors: list[str] = MIRRORS,
                sha256: dict[str, str] = SHA256) -> Path:
    """Return a verified path to `name`, downloading it into `folder` if it is missing."""
    path = folder / name
    if path.exists():
        try:
            verify(path, sha256[name])
        except DataError as error:
            raise DataError(f"{error}\nDelete {path} and run again to download a fresh copy, "
                            "or point --data-dir / BRAINLEARN_DATA at a good copy.") from error
        return path
    if not download:
        raise DataError(f"{path} is missing; run with downloads allowed, or point --data-dir / "
                        "BRAINLEARN_DATA at a folder whose mnist/ holds the four IDX .gz files.")
    return download_verified([mirror + name for mirror in mirrors], path, partial(verify, sha256=sha256[name]))


def load_mnist(folder: Path, download: bool = True, **fetch_options):
    from . import Dataset

    arrays = {name: read_idx(ensure_file(folder, name, download, **fetch_options)) for name in SHA256}

    def images(name: str) -> torch.Tensor:
        a = arrays[name]
        return torch.from_numpy(a.reshape(len(a), -1).astype(np.float32) / 255.0)

    def labels(name: str) -> torch.Tensor:
        return torch.from_numpy(arrays[name].astype(np.int64))

    return Dataset(
        "mnist",
        images("train-images-idx3-ubyte.gz"), labels("train-labels-idx1-ubyte.gz"),
        images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz"),
        (28, 28),
    )
