"""Errors a user can fix. The CLI prints the message as one sentence and exits with status 2."""


class UserError(Exception):
    """Bad input: the message names the problem and the fix."""

    exit_code = 2


class ConfigError(UserError):
    """A config or space file is malformed (names the file and key)."""


class DataError(UserError):
    """A data source is missing, empty or malformed."""


class WeightsError(UserError):
    """The requested backbone weights cannot be had."""


class DivergedError(RuntimeError):
    """Training produced a non-finite loss. Raised by train(); the search prunes or fails the trial."""


class SearchFailed(Exception):
    """A search ran trials but none gave a result (all failed, or none completed): exit status 1."""

    exit_code = 1
