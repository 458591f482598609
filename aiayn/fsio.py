"""Filesystem helpers: atomic outputs and checked inputs.

Every output is written to a temporary sibling and renamed into place only on success, so a
failed or interrupted stage never leaves a half-written file or folder behind. A write that
fails for lack of room (a full disk, a quota, a file size limit), whatever library did the
writing, becomes a one-line :class:`~aiayn.errors.OutputError` naming the output;
:func:`write_stdout` does the same for standard output. :func:`utf8_error` names the line and
byte offset of the first invalid UTF-8 in a file; :func:`load_weights_only` loads a torch
file without unpickling code, with one-line errors.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aiayn.errors import AiaynError, DataError, MissingInputError, OutputError

# errno values meaning "no room for the data": a full disk, a quota, a file size limit.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
# The same, as reported by writers that are not Python file objects: Rust's io::Error
# (tokenizers) and numpy's tofile (a short write).
_ERRNOS = "|".join(map(str, sorted(NO_SPACE_ERRNOS)))
_NO_SPACE_TEXT = re.compile(rf"\(os error ({_ERRNOS})\)|\b\d+ requested and \d+ written")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _default_mode(tmp: str | os.PathLike, is_dir: bool) -> None:
    """Give a mkstemp/mkdtemp path (created 0600/0700) the mode a plain create would have."""
    os.chmod(tmp, (0o777 if is_dir else 0o666) & ~_umask())


def require_inputs(*paths: str | os.PathLike, stage: str | None = None) -> None:
    """Raise :class:`MissingInputError` naming the first path that does not exist."""
    for p in paths:
        if not Path(p).exists():
            hint = f" (run `dvc repro {stage}` first)" if stage else ""
            raise MissingInputError(f"missing input {p}{hint}")


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (and parents) and check it can be written to, or raise an AiaynError."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AiaynError(f"cannot create output folder {path}: {e.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise AiaynError(f"output folder {path} is not writable")
    return path


def no_space(exc: BaseException) -> str | None:
    """Why ``exc`` means that an output did not fit, or None when it does not.

    Looks along the exception chain (torch.save raises a RuntimeError whose context is the
    OSError) for an OSError with ENOSPC, EDQUOT or EFBIG, a Rust ``(os error 28)`` message or
    numpy's short-write message.
    """
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in NO_SPACE_ERRNOS:
            return os.strerror(e.errno)
        m = _NO_SPACE_TEXT.search(str(e))
        if m:
            return os.strerror(int(m.group(1))) if m.group(1) else f"short write ({m.group(0)})"
        e = e.__cause__ or e.__context__
    return None


def _output_error(path: Path, exc: BaseException) -> AiaynError | None:
    """The OutputError for a failed atomic write of ``path``, or None when ``exc`` is no
    lack of room (then it propagates as it is)."""
    if isinstance(exc, AiaynError) or not isinstance(exc, Exception):
        return None
    reason = no_space(exc)
    if reason is None:
        return None
    return OutputError(
        f"cannot write {path}: {reason}; {path} was left as it was: free some space (or "
        "raise the file size limit) and rerun"
    )


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator:
    """Open a temporary sibling of ``path`` for writing; rename it over ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    ensure_writable_dir(path.parent)
    if "b" not in mode:
        open_kwargs.setdefault("encoding", "utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    _default_mode(tmp, is_dir=False)
    try:
        with open(tmp, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        err = _output_error(path, e)
        if err is not None:
            raise err from None
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path next to ``path``; rename it over ``path`` on success.

    For writers that want a path rather than a file object (torch.save, tokenizer.save).
    """
    path = Path(path)
    ensure_writable_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    _default_mode(tmp, is_dir=False)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        err = _output_error(path, e)
        if err is not None:
            raise err from None
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``path``; on success it replaces ``path``.

    The previous contents of ``path`` (if any) are removed only after the new folder is
    complete. On an exception the temporary folder is removed and ``path`` is untouched.
    """
    path = Path(path)
    ensure_writable_dir(path.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    _default_mode(tmp, is_dir=True)
    try:
        yield tmp
        old = None
        if path.exists() or path.is_symlink():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
            else:
                old.unlink()
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        err = _output_error(path, e)
        if err is not None:
            raise err from None
        raise


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def count_lines(path: str | os.PathLike) -> int:
    """Number of newline-terminated lines (a final unterminated line counts too)."""
    n = 0
    last = b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")


def load_weights_only(
    path: str | os.PathLike,
    *,
    what: str,
    fix: str = "",
    error: type[DataError] = DataError,
    map_location: Any = "cpu",
) -> Any:
    """``torch.load(path, weights_only=True)``, with one-line errors of class ``error``.

    A file that would need unpickling arbitrary Python objects is refused (and never
    unpickled) with a message that names what it holds, and never suggests loading it
    unsafely (torch's own message does); a truncated or corrupt file says so. ``what`` names
    the file's role ("checkpoint", "model"), ``fix`` (if given) ends the message.
    """
    fix = f"; {fix}" if fix else ""
    import pickle
    import warnings

    import torch

    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on stderr
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise error(f"{path}: {what} not found{fix}") from None
    except pickle.UnpicklingError as e:
        detail = _unpickler_detail(str(e))
        raise error(
            f"{path}: refused to load this {what}: it holds Python objects beyond tensors and "
            f"plain values ({detail}), and unpickling them could run code{fix}"
        ) from None
    except Exception as e:  # zip/pickle errors of a truncated or corrupt file
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        if "weights_only" in first:
            first = type(e).__name__
        raise error(
            f"{path}: cannot load {what}: truncated or corrupt ({first[:160]}){fix}"
        ) from None


def _unpickler_detail(message: str) -> str:
    """The reason torch's weights-only unpickler gave, without its advice: the first line
    after ``WeightsUnpickler error:``, cut at its first sentence."""
    _, _, rest = message.partition("WeightsUnpickler error:")
    line = next((s.strip() for s in rest.splitlines() if s.strip()), "")
    line = line.split(". ")[0].rstrip(".")
    return line[:160] if line else "not a weights-only file"


def write_stdout(text: str, stream: Any = None) -> None:
    """Write ``text`` to standard output (``stream``) as UTF-8, in full, and flush it.

    Every write is checked: a short write (an unbuffered stdout on a nearly full disk takes
    part of the bytes) is continued, and a failing one raises :class:`OutputError`. When
    stdout is a regular file, what this call wrote is then cut off again, so the file is
    left as it was, and the rest of stdout is discarded (nothing is written later).
    """
    stream = sys.stdout if stream is None else stream
    data = text.encode("utf-8")
    buf = getattr(stream, "buffer", None)
    fd = _fileno(stream)
    done, start = 0, None
    try:
        stream.flush()
        start = _end_of_regular_file(fd)
        if buf is None:  # a text-only stream (io.StringIO)
            stream.write(text)
            stream.flush()
            return
        view = memoryview(data)
        while done < len(data):
            n = buf.write(view[done:])
            if not n:
                raise OSError(errno.EIO, "the stream took no more bytes")
            done += n
        buf.flush()
    except OSError as e:
        undone = start is not None and _truncate(fd, start)
        discard_stdout(stream)
        if e.errno == errno.EPIPE:  # the reader stopped reading (`| head`): a quiet exit 1
            raise
        reason = no_space(e) or e.strerror or str(e)
        left = "the partial output was removed" if undone else "the output is incomplete"
        raise OutputError(
            f"cannot write to standard output: {reason} after {done:,} of {len(data):,} bytes; "
            f"{left}: free some space (or write with -o FILE elsewhere) and rerun"
        ) from None


def _fileno(stream: Any) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return None


def _end_of_regular_file(fd: int | None) -> int | None:
    """Where the next write to ``fd`` lands if it is a regular file (else None)."""
    if fd is None:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        import fcntl

        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND:
            return st.st_size
        return os.lseek(fd, 0, os.SEEK_CUR)
    except (OSError, ImportError):
        return None


def _truncate(fd: int | None, size: int) -> bool:
    try:
        os.ftruncate(fd, size)
        return True
    except (OSError, TypeError):
        return False


def discard_stdout(stream: Any = None) -> None:
    """Point the file descriptor of ``stream`` (stdout) at the null device after a failed
    write: what is still buffered for it goes nowhere, so neither a later flush nor the
    interpreter's exit fails (or writes) again."""
    fd = _fileno(sys.stdout if stream is None else stream)
    if fd is None:
        return
    with contextlib.suppress(OSError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd)
        os.close(null)


def read_lines(
    path: str | os.PathLike, *, label: str | None = None, strip_cr: bool = False
) -> list[str]:
    """The lines of a UTF-8 text file, split on ``\\n`` only (see :func:`decode_lines`): the
    one reader of whole text files.

    A missing file, a folder, an unreadable file or invalid UTF-8 (naming the line and byte
    offset) is a one-line error naming ``label`` (default: the path). ``strip_cr``: drop a
    ``\\r`` that ends a line (CRLF files).
    """
    path = Path(path)
    name = label or str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MissingInputError(f"{name}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{name} is a folder; give a text file, one segment per line") from None
    except OSError as e:
        raise DataError(f"{name}: cannot read: {e.strerror}") from None
    return decode_lines(data, name, strip_cr=strip_cr, path=path)


def decode_lines(
    data: bytes, name: str, *, strip_cr: bool = False, path: str | os.PathLike | None = None
) -> list[str]:
    """UTF-8 ``data`` split on ``\\n`` only (a final ``\\n`` ends the last line; U+2028 and
    the like stay in the text, and ``\\r`` too unless ``strip_cr``); a DataError naming
    ``name``, the line and the byte offset when it is not UTF-8 (``path``: the file read)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise utf8_error(path or name, data, label=name) from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines] if strip_cr else lines


def iter_lines(path: str | os.PathLike, max_lines: int = 0) -> Iterator[str]:
    """Lines of a UTF-8 file without their ``\\n`` (only ``\\n`` ends a line), streamed, for
    files too large to hold; ``max_lines`` > 0 stops after that many lines. Invalid UTF-8 is
    a DataError naming the line and byte offset."""
    try:
        with open(path, encoding="utf-8", newline="\n") as f:
            for n, line in enumerate(f, 1):
                yield line[:-1] if line.endswith("\n") else line
                if n == max_lines:
                    return
    except UnicodeDecodeError:
        raise utf8_error(path) from None


def utf8_error(
    path: str | os.PathLike, data: bytes | None = None, label: str | None = None
) -> DataError:
    """A DataError naming the line and byte offset of the first invalid UTF-8 in ``path``,
    for a file that failed to decode (see :func:`invalid_utf8`)."""
    found = invalid_utf8(path, data, label)
    return found or DataError(f"{label or path}: not UTF-8 text; convert the file to UTF-8")


def invalid_utf8(
    path: str | os.PathLike, data: bytes | None = None, label: str | None = None
) -> DataError | None:
    """A DataError naming the line and byte offset of the first invalid UTF-8 in ``path``,
    or None when it is all UTF-8.

    ``data``: the file's bytes when already read (else the file is scanned line by line);
    ``label``: the name to show instead of ``path``.
    """
    name = label or str(path)
    offset = 0
    with contextlib.ExitStack() as stack:
        if data is None:
            lines: Any = stack.enter_context(open(path, "rb"))
        else:
            lines = data.splitlines(keepends=True)  # bytes split on \n, \r and \r\n only
        for n, line in enumerate(lines, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as e:
                if data is not None:  # count \n-terminated lines, like the file scan
                    n = data.count(b"\n", 0, offset + e.start) + 1
                return DataError(
                    f"{name}:{n}: not UTF-8 text (byte 0x{line[e.start]:02X} at offset "
                    f"{offset + e.start:,} of the file); "
                    "convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)"
                )
            offset += len(line)
    return None
