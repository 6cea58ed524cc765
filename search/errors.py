"""Errors a user can fix. The CLI prints the message as one sentence and exits with status 2."""

import reprlib

_SHOW = reprlib.Repr()
_SHOW.maxlevel, _SHOW.maxlist, _SHOW.maxdict, _SHOW.maxstring, _SHOW.maxother = 2, 4, 4, 60, 60


def show(value) -> str:
    """A value from a user's file, quoted in a message: bounded in length and work whatever it is
    (a YAML alias bomb's nested lists, an integer of thousands of digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**60:
        return f"an integer of {len(str(abs(value))) if abs(value) < 10**4000 else 'over 4000'} digits"
    try:
        return _SHOW.repr(value)
    except (ValueError, RecursionError):
        return f"a {type(value).__name__} too large to show"


def require(package: str, what: str, extra: str, otherwise: str = "") -> None:
    """Import `package` for `what` (a flag), or refuse with the pip command that installs it."""
    import importlib

    try:
        importlib.import_module(package)
    except ImportError:
        raise UserError(f"{what} needs the {package} package; install it (pip install "
                        f"'.[{extra}]' or -r requirements.txt){otherwise}.") from None


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
