"""User-facing errors.

Anything a user can get wrong (params, missing inputs, bad files) raises an :class:`AiaynError`
whose message is one line naming the file, line, key or value at fault. The command-line
entry points turn it into ``error: <message>`` on stderr and exit code 1, without a traceback.
"""

from __future__ import annotations


class AiaynError(Exception):
    """Base class for errors that are the user's to fix; the message is shown as is."""


class ConfigError(AiaynError):
    """A params file that is missing, malformed, or holds an unknown key, wrong type or bad value."""


class DataError(AiaynError):
    """Input data that is missing, corrupt, or inconsistent (line counts, checksums, formats)."""


class MissingInputError(DataError):
    """A stage was run before the stage that produces its input."""


class OutputError(AiaynError):
    """An output that could not be written in full (disk full, quota, file size limit)."""
