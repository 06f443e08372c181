"""A book as strings of a 30-symbol alphabet, prepared as Hinton (2022, sec. 3.5) prepared Aesop's fables for
Forward-Forward's next-character experiment: "the first 24,800 characters [...] lowercased and restricted to a
30-symbol alphabet [...] cut into 248 strings of 100 characters".

The book here is *Botchan* (Project Gutenberg #8868; see the data README): the fables are not reachable from
these machines. Preparation, for any Gutenberg text (`prepare_book`):

* the text between the lines `*** START OF ...` and `*** END OF ...` (the header and licence dropped);
* lowercased; line breaks, tabs and hyphens become spaces; '?' and '!' become '.', ':' becomes ';' (sentence and
  clause ends keep their role); every other symbol outside the alphabet (quotes, apostrophes, brackets, digits)
  is dropped; runs of spaces become one space.

`load_book` cuts the first 248 x 100 symbols into the training strings and the following symbols into as many
held-out 100-symbol test strings as asked.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .download import DataError, download_verified

ALPHABET = "abcdefghijklmnopqrstuvwxyz ,;."
BOTCHAN = "botchan.txt"
BOTCHAN_SHA256 = "464bd5300c24fce16fcc4555d4231a57632caae4d0090ad6aa92854a3b227ba7"
# The same file ships with sentencepiece (its test data); a download is kept only if its sha256 matches.
BOTCHAN_URLS = ["https://raw.githubusercontent.com/google/sentencepiece/master/data/botchan.txt"]
_REPLACE = str.maketrans({"\n": " ", "\r": " ", "\t": " ", "-": " ", "?": ".", "!": ".", ":": ";"})


@dataclass(frozen=True)
class Book:
    """Strings of symbol indices into ALPHABET: training (n, length) and held-out test strings."""

    name: str
    train: torch.Tensor
    test: torch.Tensor
    alphabet: str = ALPHABET

    def decode(self, indices: torch.Tensor) -> str:
        return "".join(self.alphabet[i] for i in indices.tolist())


def prepare_book(raw: str) -> str:
    """The book's text between Gutenberg's START and END lines, in the 30-symbol alphabet (module docstring)."""
    start = re.search(r"^\*\*\* ?START OF.*$", raw, re.MULTILINE)
    end = re.search(r"^\*\*\* ?END OF.*$", raw, re.MULTILINE)
    if start is None or end is None or end.start() < start.end():
        raise DataError("no '*** START OF' ... '*** END OF' lines: not a Project Gutenberg text")
    text = raw[start.end():end.start()].lower().translate(_REPLACE)
    text = "".join(symbol for symbol in text if symbol in ALPHABET)
    return re.sub(" +", " ", text).strip()


def encode(text: str) -> torch.Tensor:
    return torch.tensor([ALPHABET.index(symbol) for symbol in text], dtype=torch.int64)


def verify_text(path: Path, sha256: str) -> None:
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if actual != sha256:
        raise DataError(f"{path} fails its checksum: sha256 {actual}, expected {sha256}")


def load_book(folder: Path, download: bool = True, strings: int = 248, length: int = 100,
              test_strings: int = 248) -> Book:
    """Botchan from `folder`/botchan.txt (downloaded and checked if missing): `strings` training strings of
    `length` symbols from the start of the book, then `test_strings` held-out strings that follow them."""
    path = folder / BOTCHAN
    if path.exists():
        try:
            verify_text(path, BOTCHAN_SHA256)
        except DataError as error:
            raise DataError(f"{error}\nDelete {path} and run again to download a fresh copy, or point --data-dir / "
                            "BRAINLEARN_DATA at a good copy.") from error
    elif not download:
        raise DataError(f"{path} is missing; run with downloads allowed, or point --data-dir / BRAINLEARN_DATA at "
                        "a folder whose text/ holds botchan.txt.")
    else:
        download_verified(BOTCHAN_URLS, path, lambda p: verify_text(p, BOTCHAN_SHA256))
    symbols = encode(prepare_book(path.read_text(encoding="utf-8-sig")))
    needed = (strings + test_strings) * length
    if len(symbols) < needed:
        raise DataError(f"{path}: {len(symbols)} symbols after preparation, fewer than the {needed} asked for")
    cut = symbols[:needed].view(strings + test_strings, length)
    return Book("botchan", cut[:strings], cut[strings:])
