"""Shared plumbing for the ``aiayn`` app and the ``stages/`` commands.

:func:`run` calls a Typer app and turns an :class:`~aiayn.errors.AiaynError` into a one-line
``error: ...`` on stderr with exit code 1 (no traceback): the user's mistake is named, not
buried. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

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
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(1)


def run(app: typer.Typer, argv: list[str] | None = None) -> None:
    """Run ``app`` as a program, mapping AiaynError to ``error: ...`` and exit code 1."""
    try:
        app(args=argv)
    except AiaynError as e:
        fail(str(e))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
