"""The two kinds of error the project raises on purpose.

``BadInput``: the user asked for something that cannot be done (unknown name,
value out of range, missing file); the CLI prints the message and exits with code 2
before any work starts.  ``CookbookError``: work started and failed for a reason
worth reporting plainly (exit code 1).  Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations


class CookbookError(Exception):
    """A failure with a message meant for the user."""


class BadInput(CookbookError, ValueError):
    """Input that is wrong before any work starts (CLI exit code 2)."""
