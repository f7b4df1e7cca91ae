"""The one exception type for bad user input.

Raised with a one-line message that names the problem and the fix; the CLI prints it without a
traceback and exits with status 2.
"""


class T2VError(Exception):
    """A user-facing error: bad input, missing file, wrong checkpoint."""
