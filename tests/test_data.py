import gzip
import hashlib
import http.server
import struct
import threading
from functools import partial

import numpy as np
import pytest

from brainlearn.data import DataError, load_dataset, resolve_data_dir
from brainlearn.data.download import download_verified
from brainlearn.data.mnist import SHA256, ensure_file, load_mnist, read_idx


def idx_bytes(array: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_gz(path, content: bytes):
    path.write_bytes(gzip.compress(content))
    return hashlib.sha256(content).hexdigest()


@pytest.fixture
def fake_mnist(tmp_path):
    """Four tiny IDX files in MNIST's format and their content checksums."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "served"
    folder.mkdir()
    contents = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, 6, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, 4, dtype=np.uint8),
    }
    sums = {name: write_gz(folder / name, idx_bytes(a)) for name, a in contents.items()}
    return folder, sums


@pytest.fixture
def http_server(fake_mnist):
    """A file server on 127.0.0.1 serving the fake files: the download path without the internet."""
    folder, _ = fake_mnist
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_digits_are_scaled_and_split_the_same_way_every_time():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert a.x_train.shape == (1347, 64) and a.x_test.shape == (450, 64)
    assert 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0
    assert a.y_test.tolist() == b.y_test.tolist()


def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("BRAINLEARN_DATA", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "flag") == tmp_path / "flag"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("BRAINLEARN_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert resolve_data_dir() == tmp_path / "cache" / "brainlearn"


def test_download_from_local_mirror_fills_the_cache(fake_mnist, http_server, tmp_path):
    _, sums = fake_mnist
    cache = tmp_path / "cache" / "mnist"
    data = load_mnist(cache, mirrors=["http://127.0.0.1:9/nothing-here/", http_server], sha256=sums)
    assert data.x_train.shape == (6, 784) and data.y_test.shape == (4,)
    assert sorted(p.name for p in cache.iterdir()) == sorted(sums)


def test_download_with_wrong_checksum_leaves_nothing(fake_mnist, http_server, tmp_path):
    _, sums = fake_mnist
    name = "t10k-labels-idx1-ubyte.gz"
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=rf"(?s)could not download {name}.*fails its checksum"):
        download_verified([http_server + name], cache / name, "0" * 64)
    assert list(cache.iterdir()) == []


def test_wrong_checksum_names_the_file_and_the_remedy(fake_mnist):
    folder, sums = fake_mnist
    name = "train-labels-idx1-ubyte.gz"
    with pytest.raises(DataError, match=rf"(?s){name} fails its checksum.*Delete .*{name}"):
        ensure_file(folder, name, download=False, sha256={**sums, name: "f" * 64})


def test_truncated_file_is_reported(fake_mnist):
    folder, sums = fake_mnist
    name = "train-images-idx3-ubyte.gz"
    path = folder / name
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(DataError, match=rf"{name} is truncated or not gzip data"):
        ensure_file(folder, name, download=False, sha256=sums)


def test_missing_file_without_download_says_what_to_do(tmp_path):
    with pytest.raises(DataError, match="missing.*--data-dir"):
        ensure_file(tmp_path, "t10k-labels-idx1-ubyte.gz", download=False)


def test_idx_whose_header_disagrees_with_its_size_is_refused(tmp_path):
    good = idx_bytes(np.zeros((3, 4), dtype=np.uint8))
    write_gz(tmp_path / "short.gz", good[:-1])
    with pytest.raises(DataError, match="header promises"):
        read_idx(tmp_path / "short.gz")
    write_gz(tmp_path / "magic.gz", b"\x01\x02" + good[2:])
    with pytest.raises(DataError, match="magic"):
        read_idx(tmp_path / "magic.gz")


def test_real_mnist_from_the_shared_copy(shared_mnist_dir):
    data = load_dataset("mnist", shared_mnist_dir, download=False)
    assert data.x_train.shape == (60000, 784) and data.x_test.shape == (10000, 784)
    assert data.y_train.bincount().tolist()[:2] == [5923, 6742]
    assert set(SHA256) == {p.name for p in (shared_mnist_dir / "mnist").glob("*.gz")}
