import os
from pathlib import Path

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
