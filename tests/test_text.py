import shutil

import pytest
import torch

from brainlearn.data import text
from brainlearn.data.download import DataError
from brainlearn.data.text import ALPHABET, encode, load_book, prepare_book

from conftest import SHARED_DATA
from test_data import serve

GUTENBERG = """\ufeffProject Gutenberg's Example, by Someone
This eBook is for the use of anyone anywhere at no cost.
*** START OF THIS PROJECT GUTENBERG EBOOK EXAMPLE ***
Chapter 1
"Well!" said he--quite well-read: isn't it 1919?
\tThe end; [really].
*** END OF THIS PROJECT GUTENBERG EBOOK EXAMPLE ***
This and all associated files ... the licence.
"""


def test_a_book_is_the_text_between_gutenbergs_lines_in_thirty_symbols():
    prepared = prepare_book(GUTENBERG)
    assert prepared == "chapter well. said he quite well read; isnt it . the end; really."
    assert len(ALPHABET) == 30 and set(prepared) <= set(ALPHABET)
    assert "gutenberg" not in prepared and "licence" not in prepared
    assert encode("ab .").tolist() == [0, 1, 26, 29]


def test_a_text_without_gutenbergs_lines_is_refused():
    with pytest.raises(DataError, match="START OF"):
        prepare_book("just some words")


@pytest.fixture
def botchan_dir(tmp_path):
    source = SHARED_DATA / "text" / "botchan.txt"
    if not source.exists():
        pytest.skip(f"no copy of the book at {source} (set BRAINLEARN_TEST_DATA)")
    shutil.copy(source, tmp_path / "botchan.txt")
    return tmp_path


def test_the_book_gives_248_strings_of_100_symbols_and_held_out_strings_after_them(botchan_dir):
    book = load_book(botchan_dir, download=False, test_strings=50)
    assert book.train.shape == (248, 100) and book.test.shape == (50, 100)
    assert book.train.min() >= 0 and book.train.max() < 30
    whole = torch.cat([book.train.flatten(), book.test.flatten()])
    assert book.decode(whole[:40]) == book.decode(book.train[0])[:40]
    assert book.decode(book.train[0]).startswith("produced by david starner")


def test_a_wrong_or_missing_book_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="missing"):
        load_book(tmp_path, download=False)
    (tmp_path / "botchan.txt").write_text(GUTENBERG)
    with pytest.raises(DataError, match="fails its checksum.*\n.*Delete"):
        load_book(tmp_path, download=False)


def test_the_book_downloads_from_a_mirror_and_a_bad_copy_leaves_nothing(botchan_dir, tmp_path, monkeypatch):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "botchan.txt").write_text(GUTENBERG)
    with serve(bad) as bad_url:
        monkeypatch.setattr(text, "BOTCHAN_URLS", [bad_url + "botchan.txt"])
        with pytest.raises(DataError):
            load_book(tmp_path / "cache")
    assert not any((tmp_path / "cache").iterdir())
    with serve(botchan_dir) as good_url:
        monkeypatch.setattr(text, "BOTCHAN_URLS", ["http://127.0.0.1:9/nothing/botchan.txt", good_url + "botchan.txt"])
        book = load_book(tmp_path / "cache")
    assert book.train.shape == (248, 100)
