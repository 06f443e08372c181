"""Fetching and verifying data files: nothing unverified or half-written is ever left in place.

A file counts as good when the checksum of its *decompressed* content matches the published
value (a recompressed .gz is still the same data set): the sha256 of a .gz file's content, or the
md5 of every member of an archive (see cifar.py).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import sys
import tempfile
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm


class DataError(RuntimeError):
    """A data file is missing, truncated, corrupt or fails its checksum; the message says what to do."""


def gunzip_sha256(path: Path) -> str:
    """sha256 of a .gz file's decompressed content; DataError if the file is not whole gzip data."""
    digest = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
    except (EOFError, OSError, zlib.error) as error:
        raise DataError(f"{path} is truncated or not gzip data ({error})") from error
    return digest.hexdigest()


def verify(path: Path, sha256: str) -> None:
    actual = gunzip_sha256(path)
    if actual != sha256:
        raise DataError(f"{path} fails its checksum: sha256 of the content is {actual}, expected {sha256}")


def download_verified(urls: list[str], dest: Path, check: Callable[[Path], object], timeout: float = 60.0) -> Path:
    """Download `dest` from the first of `urls` that serves good content, atomically.

    Each attempt goes to a temporary file beside `dest`, is verified by `check` (which raises
    DataError on bad content), and only then renamed into place; a failed or interrupted attempt
    leaves nothing behind.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in urls:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                # a log file (not a terminal) gets a line every 30 s instead of a redraw every 0.1 s
                with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {dest.name}",
                          mininterval=0.1 if sys.stderr.isatty() else 30.0) as bar:
                    for chunk in iter(lambda: response.read(1 << 16), b""):
                        out.write(chunk)
                        bar.update(len(chunk))
            check(tmp)
            os.replace(tmp, dest)
            return dest
        except (OSError, DataError) as error:
            failures.append(f"  {url}: {error}")
        finally:
            tmp.unlink(missing_ok=True)
    raise DataError(
        f"could not download {dest.name}; tried:\n" + "\n".join(failures)
        + f"\nPlace a good copy at {dest} (or point --data-dir / BRAINLEARN_DATA at a folder holding it)."
    )
