"""Errors meant for people: the CLI prints them as one line and exits 1."""


class UserError(Exception):
    """Bad input or a refused operation, explained in one line."""
