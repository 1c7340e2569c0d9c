"""The benchmarks' data folders: their path is printed when they are created, and they are removed at the end.

Every benchmark takes ``--keep-data`` (`add_keep_data_option`). With it, or when the run
fails, a folder stays where it is and a line on stderr names it, so its logs and store can
be read afterwards.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def add_keep_data_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--keep-data`` to `parser`."""
    parser.add_argument("--keep-data", action="store_true",
                        help="keep the data folders after the run instead of removing them (their paths are printed)")


def print_note(message: str) -> None:
    """Print a line about the data folders on stderr, apart from the figures on stdout."""
    print(message, file=sys.stderr, flush=True)


def new_folder(prefix: str) -> Path:
    """Create a temporary folder whose name starts with `prefix`, print its path and return it."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    print_note(f"data folder: {folder}")
    return folder


def finish(folder: Path, *, keep: bool, failed: bool, label: str = "data folder") -> None:
    """Remove `folder`, unless `keep` is true or the run did not finish (`failed`): then print that it was kept."""
    if failed:
        print_note(f"{label} kept because the run did not finish: {folder}")
    elif keep:
        print_note(f"{label} kept (--keep-data): {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def data_folder(prefix: str, *, keep: bool) -> Iterator[Path]:
    """Yield a new temporary folder whose name starts with `prefix`, after printing its path.

    At the end the folder is removed unless `keep` is true or the block raised.
    """
    folder = new_folder(prefix)
    completed = False
    try:
        yield folder
        completed = True
    finally:
        finish(folder, keep=keep, failed=not completed)
