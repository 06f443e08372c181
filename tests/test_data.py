import contextlib
import gzip
import hashlib
import http.server
import pickle
import struct
import threading
from functools import partial

import numpy as np
import pytest
import torch

from conftest import write_fake_cifar

from brainlearn.data import DataError, load_dataset, resolve_data_dir
from brainlearn.data.download import download_verified, verify
from brainlearn.data.jitter import random_shifts, shift_images
from brainlearn.data.cifar import ARCHIVE, load_cifar10
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


@contextlib.contextmanager
def serve(folder):
    """A file server on 127.0.0.1 serving `folder`: the download path without the internet."""
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()


@pytest.fixture
def http_server(fake_mnist):
    with serve(fake_mnist[0]) as url:
        yield url


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
        download_verified([http_server + name], cache / name, partial(verify, sha256="0" * 64))
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


def test_cifar10_archive_is_read_in_place(tmp_path):
    images, md5 = write_fake_cifar(tmp_path, per_batch=3)
    data = load_cifar10(tmp_path, download=False, md5=md5)
    assert data.x_train.shape == (15, 3072) and data.x_test.shape == (3, 3072)
    assert data.image_shape == (3, 32, 32) and data.x_train.dtype == torch.float32
    assert torch.equal(data.x_train[3:6], torch.from_numpy(images["data_batch_2"][0] / 255.0).float())
    assert data.y_test.tolist() == images["test_batch"][1]
    assert [p.name for p in tmp_path.iterdir()] == [ARCHIVE]  # nothing extracted


def test_cifar10_download_from_local_mirror(tmp_path):
    _, md5 = write_fake_cifar(tmp_path / "served")
    cache = tmp_path / "cache"
    with serve(tmp_path / "served") as url:
        data = load_cifar10(cache, mirrors=["http://127.0.0.1:9/nothing-here/", url], md5=md5)
        assert len(data.x_train) == 10 and [p.name for p in cache.iterdir()] == [ARCHIVE]
        with pytest.raises(DataError, match="(?s)could not download.*fails its checksum"):
            load_cifar10(tmp_path / "other", mirrors=[url], md5={**md5, "test_batch": "0" * 32})
    assert list((tmp_path / "other").iterdir()) == []


def test_cifar10_bad_archives_are_refused_with_the_remedy(tmp_path):
    _, md5 = write_fake_cifar(tmp_path)
    with pytest.raises(DataError, match=r"(?s)data_batch_3 fails its checksum.*Delete"):
        load_cifar10(tmp_path, download=False, md5={**md5, "data_batch_3": "f" * 32})
    with pytest.raises(DataError, match="missing.*--data-dir"):
        load_cifar10(tmp_path / "empty", download=False, md5=md5)
    path = tmp_path / ARCHIVE
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated or not a gzipped tar"):
        load_cifar10(tmp_path, download=False, md5=md5)


class _RunsCode:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_cifar10_batch_that_would_run_code_is_refused(tmp_path):
    payload = pickle.dumps({"data": _RunsCode(), "labels": [0]}, protocol=2)
    _, md5 = write_fake_cifar(tmp_path, replace={"data_batch_1": payload})
    with pytest.raises(DataError, match=r"refusing to load \w+\.print"):
        load_cifar10(tmp_path, download=False, md5=md5)


def test_jitter_makes_exactly_the_25_shifts():
    image = torch.zeros(1, 28 * 28)
    image[0, 10 * 28 + 12] = 1.0  # one pixel at row 10, column 12
    shifts = torch.tensor([(down, right) for down in range(-2, 3) for right in range(-2, 3)])
    shifted = shift_images(image.expand(25, -1), (28, 28), shifts).view(25, 28, 28)
    lit = [divmod(int(row.argmax()), 28) for row in shifted.view(25, -1)]
    assert lit == [(10 + down, 12 + right) for down, right in shifts.tolist()]
    assert shifted.sum().item() == 25.0 and len(set(lit)) == 25
    drawn = random_shifts(5000, 2, torch.Generator().manual_seed(0))
    assert len(drawn.unique(dim=0)) == 25 and drawn.abs().max() == 2


def test_jitter_fills_with_zeros_and_keeps_colour_channels_apart():
    images = torch.rand(2, 3 * 4 * 4)
    out = shift_images(images, (3, 4, 4), torch.tensor([[1, 0], [0, -1]])).view(2, 3, 4, 4)
    source = images.view(2, 3, 4, 4)
    assert torch.equal(out[0, :, 1:], source[0, :, :-1]) and out[0, :, 0].eq(0).all()
    assert torch.equal(out[1, :, :, :-1], source[1, :, :, 1:]) and out[1, :, :, -1].eq(0).all()
