"""CIFAR-10 (Krizhevsky 2009) from the standard "python version" archive, cifar-10-python.tar.gz.

The archive is read in place, never extracted. Each batch is checked against its published md5 (the
decompressed content) before it is unpickled, and the unpickler builds nothing but numpy arrays and plain
Python values, so a tampered file cannot run code.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
import zlib
from functools import partial
from pathlib import Path

import numpy as np
import torch

from .download import DataError, download_verified

ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
MIRRORS = ["https://www.cs.toronto.edu/~kriz/"]
# md5 of each batch as published with the data set (the values torchvision checks too).
MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
TEST_BATCHES = ("test_batch",)
IMAGE_SHAPE = (3, 32, 32)  # each row: 1024 red, then 1024 green, then 1024 blue values, row-major


class _ArraysOnly(pickle.Unpickler):
    """Builds numpy arrays, dicts, lists, strings and numbers; refuses every other class."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"),
               ("_codecs", "encode")}  # how protocol 2 writes bytes from Python 3: text to bytes, nothing more

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise DataError(f"refusing to load {module}.{name}: a CIFAR batch holds only arrays and lists")
        return super().find_class(module, name)


def read_batches(path: Path, md5: dict[str, str]) -> dict[str, bytes]:
    """The raw bytes of every batch in `md5`, each verified against its md5."""
    batches = {}
    try:
        with tarfile.open(path, "r:gz") as archive:
            for name, expected in md5.items():
                try:
                    member = archive.extractfile(f"{FOLDER}/{name}")
                except KeyError:
                    member = None
                if member is None:
                    raise DataError(f"{path} has no file {FOLDER}/{name}: not the CIFAR-10 python archive")
                raw = member.read()
                if hashlib.md5(raw).hexdigest() != expected:
                    raise DataError(f"{path}: {FOLDER}/{name} fails its checksum (md5 "
                                    f"{hashlib.md5(raw).hexdigest()}, expected {expected})")
                batches[name] = raw
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise DataError(f"{path} is truncated or not a gzipped tar archive ({error})") from error
    return batches


def parse_batch(raw: bytes, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images as float rows in [0, 1], labels) from one pickled batch."""
    try:
        batch = _ArraysOnly(io.BytesIO(raw), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise DataError(f"{name} is not a CIFAR batch ({error})") from error
    if not isinstance(batch, dict) or "data" not in batch or "labels" not in batch:
        raise DataError(f"{name} is not a CIFAR batch: it needs 'data' and 'labels'")
    data, labels = np.asarray(batch["data"]), np.asarray(batch["labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != int(np.prod(IMAGE_SHAPE)):
        raise DataError(f"{name}: data must be uint8 rows of {int(np.prod(IMAGE_SHAPE))} values, got "
                        f"{data.dtype} {data.shape}")
    if labels.shape != (len(data),) or labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
        raise DataError(f"{name}: needs one label in 0..9 per image")
    return torch.from_numpy(data.astype(np.float32) / 255.0), torch.from_numpy(labels)


def load_cifar10(folder: Path, download: bool = True, mirrors: list[str] = MIRRORS, md5: dict[str, str] = MD5):
    from . import Dataset

    path = folder / ARCHIVE
    if not path.exists():
        if not download:
            raise DataError(f"{path} is missing; run with downloads allowed, or point --data-dir / "
                            f"BRAINLEARN_DATA at a folder whose cifar10/ holds {ARCHIVE}.")
        download_verified([mirror + ARCHIVE for mirror in mirrors], path, partial(read_batches, md5=md5))
    try:
        batches = read_batches(path, md5)
    except DataError as error:
        raise DataError(f"{error}\nDelete {path} and run again to download a fresh copy, "
                        "or point --data-dir / BRAINLEARN_DATA at a good copy.") from error
    parsed = {name: parse_batch(raw, name) for name, raw in batches.items()}

    def split(names) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = zip(*(parsed[name] for name in names))
        return torch.cat(x), torch.cat(y)

    x_train, y_train = split([name for name in md5 if name not in TEST_BATCHES])
    x_test, y_test = split([name for name in md5 if name in TEST_BATCHES])
    return Dataset("cifar10", x_train, y_train, x_test, y_test, IMAGE_SHAPE)
