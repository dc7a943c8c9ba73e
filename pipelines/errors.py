"""Errors meant for people: the CLI prints them as one line and exits 1 (2 for a refused option)."""


class UserError(Exception):
    """Bad input or a refused operation, explained in one line.

    `run_status` is how a run that stopped on this error is recorded in the
    `runs` relation ("failed", "held" or "rejected"). `exit_code` is the CLI's:
    2 when the command line asked for something refused, as for a usage error.
    """

    def __init__(self, message: str, *, run_status: str = "failed", exit_code: int = 1):
        super().__init__(message)
        self.run_status = run_status
        self.exit_code = exit_code
