"""Errors a user can cause and fix: the CLI prints them as one line and exits with status 2."""

EXIT_USER_ERROR = 2  # the exit status of every fer command line for a mistake the user can fix


class FerError(Exception):
    """A problem with the user's input (a path, a file, a flag value), not a bug in fer."""


class DataError(FerError):
    """A dataset that cannot be read as FER2013 (wrong layout, columns, labels, too many bad files)."""


class WeightsError(FerError):
    """A weights or checkpoint file that is missing, unreadable or made for another model."""
