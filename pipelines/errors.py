"""Errors meant for people: the CLI prints them as one line and exits 1."""


class UserError(Exception):
    """Bad input or a refused operation, explained in one line.

    `run_status` is how a run that stopped on this error is recorded in the
    `runs` relation ("failed", "held" or "rejected").
    """

    def __init__(self, message: str, *, run_status: str = "failed"):
        super().__init__(message)
        self.run_status = run_status
