import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np

import pytest
import torch

from brainlearn.data import load_dataset

# Real data for tests lives beside the project, never inside it.
SHARED_DATA = Path(os.environ.get("BRAINLEARN_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def shared_mnist_dir() -> Path:
    if not (SHARED_DATA / "mnist" / "t10k-labels-idx1-ubyte.gz").exists():
        pytest.skip(f"no MNIST copy at {SHARED_DATA}/mnist (set BRAINLEARN_TEST_DATA)")
    return SHARED_DATA


def write_fake_cifar(folder: Path, per_batch: int = 2, replace: dict[str, bytes] | None = None):
    """A tiny cifar-10-python.tar.gz in the real format (pickled dicts of uint8 rows and label lists)
    in `folder`; returns each batch's (data, labels) and the md5 table to load it with."""
    from brainlearn.data.cifar import ARCHIVE, FOLDER, MD5

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    images, md5 = {}, {}
    with tarfile.open(folder / ARCHIVE, "w:gz") as archive:
        for name in MD5:
            data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
            labels = rng.integers(0, 10, per_batch).tolist()
            images[name] = (data, labels)
            raw = (replace or {}).get(name) or pickle.dumps(
                {"batch_label": name, "labels": labels, "data": data, "filenames": []}, protocol=2)
            md5[name] = hashlib.md5(raw).hexdigest()
            info = tarfile.TarInfo(f"{FOLDER}/{name}")
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
    return images, md5
