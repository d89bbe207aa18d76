"""Reading files back, one reader per format (JSON objects, npz archives of arrays, text), and
the checks a write through a temporary file and a rename needs.

Every file kexp reads (its own run files and a user's data) may be damaged: truncated by a full
disk, overwritten with garbage, emptied, replaced by a directory, a device or a file of the
wrong kind. Each reader here checks what it can before it opens or allocates anything (that the
path is a regular file; that the sizes an npz header promises fit in the file) and turns every
failure into ONE error naming the file and what is wrong. The caller picks the error type (a
RunError for run files, a DataError for user data), so each keeps its place in the messages.

Writing: renaming a temporary file into place is right for regular files only (over /dev/full
it would replace the device), and mkstemp makes its file 0600 where open() makes 0644 under the
usual umask; `check_replaceable` and `file_mode` close both gaps. numpy only.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import math
import os
import stat
import zipfile
import zlib
from pathlib import Path

import numpy as np

from kexp.errors import KexpError
from kexp.validation import is_whole

MAX_TEXT_BYTES = 256 * 2**20  # a JSON or CSV file of kexp's is kilobytes; more is not one
MAX_DEFLATE_RATIO = 1032  # deflate cannot expand one byte into more than this many
# What the format-level libraries raise on damaged input (zlib.error is no OSError).
FORMAT_ERRORS = (OSError, EOFError, ValueError, KeyError, TypeError, NotImplementedError,
                 OverflowError, RecursionError, zipfile.BadZipFile, zlib.error)


def file_size(path: str | os.PathLike, error: type[KexpError], expected: str) -> int:
    """The size of `path` if it is a regular file (symlinks followed); anything else (missing,
    a directory, a device, a FIFO, a socket) raises `error` before the file is opened, since
    opening a FIFO would block and a device has no end."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise error(f"Cannot read '{path}': it is missing. Expected {expected}.") from None
    except OSError as failure:
        raise error(f"Cannot read '{path}': {failure.strerror}. Expected {expected}.") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"Cannot read '{path}': it is a directory. Expected {expected}.")
    if not stat.S_ISREG(info.st_mode):
        raise error(f"Cannot read '{path}': it is not a regular file (a device, FIFO or "
                    f"socket). Expected {expected}.")
    return info.st_size


def read_text(path: str | os.PathLike, error: type[KexpError], expected: str) -> str:
    """The UTF-8 text of a regular file of at most MAX_TEXT_BYTES."""
    size = file_size(path, error, expected)
    if size > MAX_TEXT_BYTES:
        raise error(f"Cannot read '{path}': it has {size} bytes, more than such a file ever "
                    f"holds ({MAX_TEXT_BYTES}). Expected {expected}.")
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_TEXT_BYTES + 1)
        if b"\x00" in raw:
            raise ValueError("it holds NUL bytes (binary garbage)")
        return raw.decode("utf-8")
    except FORMAT_ERRORS as failure:
        raise error(f"Cannot read '{path}': {_reason(failure)}. Expected {expected}.") from None


def read_json_object(path: str | os.PathLike, error: type[KexpError],
                     expected: str = "a JSON object written by kexp") -> dict:
    """A JSON file whose top level is an object."""
    text = read_text(path, error, expected)
    try:
        payload = json.loads(text)
    except FORMAT_ERRORS as failure:
        problem = "it is empty" if not text.strip() else f"not valid JSON ({_reason(failure)})"
        raise error(f"Cannot read '{path}': {problem}. Expected {expected}.") from None
    if not isinstance(payload, dict):
        raise error(f"Cannot read '{path}': it holds a JSON {type(payload).__name__}, not an "
                    f"object. Expected {expected}.")
    return payload


def check_replaceable(path: str | os.PathLike, error: type[KexpError]) -> Path:
    """Refuse to replace anything but a regular file: renaming over a device (/dev/full), a
    directory, a FIFO or a socket would destroy it, not write into it. A symlink is judged by
    what it points to; a path that does not exist yet is fine."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return Path(path)
    if not stat.S_ISREG(mode):
        kind = ("a directory" if stat.S_ISDIR(mode)
                else "not a regular file (a device, FIFO or socket)")
        raise error(f"Cannot write '{path}': it is {kind}, which a write would replace. "
                    "Expected a regular file or a new file name.")
    return Path(path)


def folder_problem(folder: str | os.PathLike) -> str | None:
    """Why `folder` cannot be used as a folder ("is a symlink loop", ...), or None when it is a
    folder or nothing is there. Symlinks are followed: a link to a folder is that folder."""
    try:
        if not stat.S_ISDIR(os.stat(folder).st_mode):
            return "is a file, not a folder"
    except FileNotFoundError:
        if os.path.islink(folder):
            return f"is a symlink to '{os.readlink(folder)}', which does not exist"
    except OSError as failure:
        return ("is a symlink loop" if failure.errno == errno.ELOOP
                else f"cannot be read ({failure.strerror})")
    return None


def prepare_folder(folder: str | os.PathLike, option: str, error: type[KexpError]) -> Path:
    """Create `folder` (with its parents) if needed and check that kexp can write in it, so a
    bad folder option (`option`: its name) fails before any work, saying what the path is."""
    folder = Path(folder)
    problem = folder_problem(folder)
    if problem is None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as failure:
            problem = f"cannot be created ({failure.strerror})"
    if problem is None and not os.access(folder, os.W_OK | os.X_OK):
        problem = "is not writable"
    if problem:
        raise error(f"Invalid value for `{option}`: '{folder}' {problem}. Choose a writable "
                    f"folder with --{option.replace('_', '-')}.")
    return folder


def file_mode() -> int:
    """The mode a new file gets from open() under this process' umask (0o666 & ~umask), read
    without changing the umask where /proc says it."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            umask = next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def complete_lines(text: str) -> str:
    """`text` without a last line that has no line end: a file appended row by row (history.csv,
    not renamed into place) can end in a row cut short by a hard kill mid-write."""
    return text[:text.rfind("\n") + 1]


def read_csv_numbers(path: str | os.PathLike, error: type[KexpError], expected: str,
                     drop_torn_last_line: bool = False) -> list[dict[str, float]]:
    """The rows of a CSV file of numbers with a header, as dicts of floats; optionally without
    a last row cut short (see `complete_lines`)."""
    text = read_text(path, error, expected)
    if drop_torn_last_line:
        text = complete_lines(text)
    rows, line = [], 1
    try:
        for line, row in enumerate(csv.DictReader(io.StringIO(text, newline="")), start=2):
            rows.append({key: float(value) for key, value in row.items()})
    except (csv.Error, ValueError, TypeError) as failure:  # TypeError: a short or long row
        raise error(f"Cannot read '{path}': line {line} is not a row of numbers "
                    f"({_reason(failure)}). Expected {expected}.") from None
    return rows


# Kinds of JSON values for check_fields: a tuple instead lists the allowed strings.
NUMBER, WHOLE, TEXT, OBJECT = ("a finite number", "a whole number from 0 to 2**63 - 1",
                               "a string", "a JSON object")
_KIND_CHECKS = {  # JSON's numbers are unbounded (10**400) and Python's json reads NaN: refused
    NUMBER: lambda value: (isinstance(value, (int, float)) and not isinstance(value, bool)
                           and math.isfinite(value)),
    WHOLE: lambda value: is_whole(value) and 0 <= value < 2**63,
    TEXT: lambda value: isinstance(value, str),
    OBJECT: lambda value: isinstance(value, dict),
}


def check_fields(payload: dict, kinds: dict, path: str | os.PathLike, error: type[KexpError],
                 required: tuple[str, ...] = ()) -> dict:
    """Check that each field of `payload` named in `kinds` has its kind (None allowed where it
    is not `required`); fields it does not name are left alone."""
    for key, kind in kinds.items():
        value = payload.get(key)
        if value is None and key not in required:
            continue
        valid = value in kind if isinstance(kind, tuple) else _KIND_CHECKS[kind](value)
        if not valid:
            shown = "missing" if key not in payload else f"{value!r:.60}"
            expected = f"one of: {', '.join(kind)}" if isinstance(kind, tuple) else kind
            raise error(f"Cannot read '{path}': `{key}` is {shown}. Expected {expected}.")
    return payload


def read_npz(path: str | os.PathLike, error: type[KexpError],
             expected: str = "an npz archive of arrays written by kexp") -> dict[str, np.ndarray]:
    """Every array of an npz archive, by name; never unpickles. Each member's header is read and
    its shape times its item size compared with the bytes the member really holds before the
    array is allocated, so a header that claims 730 GiB is refused, not attempted."""
    size = file_size(path, error, expected)
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if not members:
                raise ValueError("the archive holds no arrays")
            for member in members:
                _check_member(archive, member, size)
        with np.load(path, allow_pickle=False) as loaded:
            return {name: loaded[name] for name in loaded.files}
    except KexpError:
        raise
    except FORMAT_ERRORS as failure:
        raise error(f"Cannot read '{path}': {_npz_reason(failure, size)}. "
                    f"Expected {expected}.") from None


def check_arrays(arrays: dict[str, np.ndarray], rules: dict[str, tuple[str, tuple]],
                 path: str | os.PathLike, error: type[KexpError], expected: str
                 ) -> dict[str, np.ndarray]:
    """Check that each array named in `rules` is in `arrays` with a dtype of one of the numpy
    kinds given ("f" float, "iu" integer) and a shape like the one given: an int is that exact
    length, None any length, and a name a length every array sharing that name has. Every array
    must hold values; `arrays` may hold others, left alone."""
    lengths: dict[str, int] = {}
    for name, (kinds, shape) in rules.items():
        array = arrays.get(name)
        if array is None:
            raise error(f"Cannot read '{path}': it has no array '{name}' (it has: "
                        f"{', '.join(sorted(arrays)) or 'none'}). Expected {expected}.")
        fits = array.dtype.kind in kinds and array.ndim == len(shape) and array.size > 0
        for length, wanted in zip(array.shape, shape) if fits else ():
            if isinstance(wanted, str):
                wanted = lengths.setdefault(wanted, length)
            fits = fits and wanted in (None, length)
        if not fits:
            described = ", ".join("any" if size is None else str(size) for size in shape)
            raise error(f"Cannot read '{path}': its array '{name}' has shape {array.shape} and "
                        f"dtype {array.dtype}, not ({described}) of kind '{kinds}' with values. "
                        f"Expected {expected}.")
    return arrays


def _check_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, archive_size: int) -> None:
    """Raise ValueError unless `member` is a .npy array whose header fits its real size."""
    name = member.filename
    if not name.endswith(".npy"):
        raise ValueError(f"its member '{name}' is not a .npy array")
    if member.compress_size > archive_size or member.file_size > max(
            member.compress_size, 1) * (1 if member.compress_type == zipfile.ZIP_STORED
                                        else MAX_DEFLATE_RATIO):
        raise ValueError(f"its member '{name}' claims {member.file_size} bytes, more than the "
                         f"{archive_size}-byte archive can hold")
    with archive.open(member) as handle:
        version = np.lib.format.read_magic(handle)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read_header(handle)
        header_bytes = handle.tell()
    if dtype.hasobject:
        raise ValueError(f"its array '{name[:-4]}' has dtype object: object arrays would "
                         "need unpickling, which kexp refused")
    promised = math.prod(shape) * dtype.itemsize
    if promised != member.file_size - header_bytes:
        raise ValueError(f"the header of '{name[:-4]}' promises {shape} {dtype} "
                         f"({promised} bytes) but it holds {member.file_size - header_bytes} "
                         "bytes (truncated or corrupt)")


def _npz_reason(failure: BaseException, size: int) -> str:
    if size == 0:
        return "it is empty"
    if isinstance(failure, zipfile.BadZipFile):
        return f"not a valid .npz file (a zip archive of arrays), truncated or corrupt ({failure})"
    return _reason(failure)


def _reason(failure: BaseException) -> str:
    """One line about a library's exception: its message, or its type when it has none."""
    text = str(failure).strip().splitlines()
    return text[0] if text else type(failure).__name__
