"""Errors a user can cause. The CLI prints their message as one line and exits non-zero, without a traceback."""

import sys


class UserError(Exception):
    """Bad input from the user: a config, a corpus, a run directory, an option. The message names the culprit."""


class ConfigError(UserError):
    """A config file or override that cannot be used."""


def print_warning(line: str) -> None:
    """A warning line on stderr, where it stays out of output that programs read (evaluate --json)."""
    print(line, file=sys.stderr)
