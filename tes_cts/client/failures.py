"""How every verb of the command line fails: one line on stderr, an exit code, no traceback."""

from __future__ import annotations

import functools
import os
import sys

from .api import EXIT_COMPLETE, EXIT_ERROR, ApiError

EXIT_INTERRUPTED = 130  # what a shell reports for Ctrl-C


class CommandError(Exception):
    """Something local a verb cannot use (an argument, a file, an index), as one line."""


def say(message: str) -> None:
    """One line on stderr, as every message of the command line."""
    print(f"tes-cts: {' '.join(message.split())}", file=sys.stderr)


def one_line_errors(verb):
    """`verb(args)` as an argparse handler: its exit code (None is 0); a refusal of the server, a
    storage error, a CommandError or a local file's OSError as one line and exit code 1; Ctrl-C 130; a reader gone
    (`| head`) 1."""

    @functools.wraps(verb)
    def handler(args) -> int:
        from ..storage.base import StorageError  # here: the storage package loads boto3

        try:
            code = verb(args)
        except (ApiError, StorageError, CommandError) as exc:
            say(str(exc))
            return EXIT_ERROR
        except KeyboardInterrupt:
            say("interrupted")
            return EXIT_INTERRUPTED
        except BrokenPipeError:
            # Point stdout at /dev/null so that the flush at exit does not fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_ERROR
        except OSError as exc:  # a local file or directory
            say(f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc))
            return EXIT_ERROR
        return EXIT_COMPLETE if code is None else code

    return handler
