"""The errors llamadesk shows to its users.

Anything the user can fix (a wrong path, a bad file, an unknown name) is raised as one of these,
with a message written for them; the CLI prints the message alone and exits with `exit_code`.
"""

from __future__ import annotations


class LlamadeskError(Exception):
    """Something went wrong that the user should read about; exit code 1."""

    exit_code = 1


class BadInputError(LlamadeskError):
    """The user's input (a path, a name, an option) cannot be used; exit code 2."""

    exit_code = 2


class PromptTooLong(BadInputError):
    """A prompt with more tokens than the context holds. Bad input for one request (exit 2, a 400
    from the server); a document's translation keeps that one segment as it was and goes on."""


class Interrupted(LlamadeskError):
    """The user pressed Ctrl-C during long work; exit code 130 like a shell."""

    exit_code = 130


# What a parser of a server's answer raises when the answer is not what such a server sends (a
# field missing or of the wrong type, JSON that is not JSON or nested without end): huggingface-hub
# lets these through. Shared by the Hub code (pulls) and convert/'s downloads, which map them to
# one line of bad input.
MALFORMED_ANSWER = (KeyError, TypeError, AttributeError, ValueError, RecursionError)
