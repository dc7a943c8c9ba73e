"""Errors meant for people: the CLI prints them as one line and exits 1 (2 for a refused option)."""


class UserError(Exception):
    """Bad input or a refused operation, explained in one line. `run_status` records a run stopped by it
    in `runs` ("failed", "held" or "rejected"); `exit_code` is 2 for a refused command-line request."""

    def __init__(self, message: str, *, run_status: str = "failed", exit_code: int = 1):
        super().__init__(message)
        self.run_status = run_status
        self.exit_code = exit_code
