"""Shared plumbing for the ``aiayn`` app and the ``stages/`` commands.

:func:`run` calls a Typer app and turns an :class:`~aiayn.errors.AiaynError` into a one-line
``error: ...`` on stderr with exit code 1 (no traceback): the user's mistake is named, not
buried. So is an output that did not fit (a full disk, a quota, a file size limit), whatever
wrote it, and standard output is flushed and checked before the exit: a program never ends
with status 0 after losing output. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import io
import sys
from collections.abc import Callable
from typing import NoReturn

import typer

from aiayn.errors import AiaynError


def new_app(help: str | None = None, **kwargs) -> typer.Typer:
    """A Typer app with our defaults (no completion install, plain tracebacks)."""
    return typer.Typer(
        help=help,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
        **kwargs,
    )


def fail(message: str) -> None:
    """Print ``error: message`` on stderr and exit 1."""
    raise SystemExit(_error(message))


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return 1


def run(app: typer.Typer, argv: list[str] | None = None) -> NoReturn:
    """Run ``app`` as a program (see :func:`run_main`)."""
    run_main(lambda: app(args=argv))


def run_main(main: Callable[[], object]) -> NoReturn:
    """Call ``main`` as a program and exit: 0, or ``main``'s SystemExit code.

    AiaynError: ``error: <message>`` on stderr, exit 1. An exception that means an output did
    not fit (:func:`aiayn.fsio.no_space`): the same, naming the reason. Ctrl-C: exit 130.
    Standard output is flushed and checked last; a failure there is an error too (a broken
    pipe, whose reader chose to stop, exits 1 quietly).
    """
    from aiayn.fsio import no_space

    original = sys.stdout
    _buffer_unbuffered_stdout()
    code: int | str | None = 0
    try:
        main()
    except SystemExit as e:
        code = e.code
    except AiaynError as e:
        code = _error(str(e))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    except BrokenPipeError:  # stdout's reader went away (`| head`): nothing to tell it
        from aiayn.fsio import discard_stdout

        discard_stdout()
        code = 1
    except Exception as e:
        reason = no_space(e)
        if reason is None:
            raise
        # A print() that failed leaves its bytes in stdout's buffer: flushing names the culprit.
        code = _flush_stdout(0) or _error(
            f"cannot write an output: {reason}; outputs written atomically were left as they "
            "were: free some space (or raise the file size limit) and rerun"
        )
    finally:
        code = _flush_stdout(code)
        if sys.stdout is not original:
            sys.stdout = original
    raise SystemExit(code)


def _buffer_unbuffered_stdout() -> None:
    """Under PYTHONUNBUFFERED (``python -u``: common in Docker and CI) stdout writes go
    straight to the file descriptor, and a short write (a nearly full disk takes part of the
    bytes) silently loses the rest. Put a buffer in between: it continues short writes and
    raises when one fails. Lines still go out as they are printed."""
    out = sys.stdout
    if not isinstance(getattr(out, "buffer", None), io.RawIOBase):
        return
    raw = io.FileIO(out.fileno(), "w", closefd=False)
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(raw), encoding=out.encoding, errors=out.errors, line_buffering=True
    )


def _flush_stdout(code: int | str | None) -> int | str | None:
    """Flush stdout and return ``code``; when that fails, report it (unless an error was
    reported already, or the pipe's reader went away) and return a failing code."""
    from aiayn.fsio import discard_stdout, no_space

    try:
        sys.stdout.flush()
        return code
    except OSError as e:
        discard_stdout()
        if code not in (0, None):
            return code
        if e.errno != errno.EPIPE:
            reason = no_space(e) or e.strerror or str(e)
            _error(
                f"cannot write to standard output: {reason}; the output is incomplete: free "
                "some space (or write to another disk) and rerun"
            )
        return 1
