"""The one exception type for errors a user can cause (bad input, a missing tool, a full disk)."""


class UvssmError(Exception):
    """A user-facing error. Its message is one line that names the file and the problem.

    The CLI prints it in red and exits non-zero; anything else that escapes is a bug and keeps
    its traceback.
    """
