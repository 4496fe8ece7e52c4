"""Errors that reach the user as one line and an exit code, never a traceback."""


class DistillError(Exception):
    """A failure the user can act on. The CLI prints `error: <message>` and exits with `exit_code`."""

    exit_code = 1


class UsageError(DistillError):
    """Bad command line or config: wrong key, wrong type, missing file. Exit code 2."""

    exit_code = 2
