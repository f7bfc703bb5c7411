"""Bad input on the command line: one line on stderr, exit status 2, no traceback.

Every CLI's ``__main__`` goes through :func:`run_cli`. Code that checks user input raises
:class:`UsageError` (a ``SystemExit``, so a caller of ``main()`` in Python can catch it and
read the message); :func:`usage_errors` turns the library's own errors about a setting
(``ValueError``, ``TypeError``, ``KeyError``, a missing file, malformed YAML) into one,
around the code that reads input only, so a genuine bug still shows its traceback.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import yaml

EXIT_USAGE = 2  # argparse's convention for bad input
EXIT_WRITE = 1  # the machine refused a write (full disk, read-only or forbidden folder): not the input's fault
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO}
WRITE_FIXES = {errno.ENOSPC: "free some space or write elsewhere", errno.EDQUOT: "free some space or write elsewhere",
               errno.EROFS: "choose a writable folder", errno.EACCES: "choose a folder you may write to",
               errno.EPERM: "choose a folder you may write to"}
INPUT_ERRORS = (ValueError, TypeError, KeyError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
                NotImplementedError, yaml.YAMLError)

# what gym.make raises for a bad setting (unknown kwarg, value, dataset, learner, missing or damaged data)
ENV_ERRORS = (KeyError, TypeError, ValueError, OSError, NotImplementedError, ImportError)


class UsageError(SystemExit):
    """Bad input, explained in ``message``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def did_you_mean(name: str, valid: list[str] | tuple[str, ...]) -> str:
    """`` (did you mean 'X'?)`` for the valid name closest to ``name`` (case ignored), or ''."""
    import difflib

    lowered = {v.lower(): v for v in valid}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return f" (did you mean {lowered[close[0]]!r}?)" if close else ""


def canonical_name(name: str | None, valid: list[str] | tuple[str, ...]) -> str | None:
    """``name`` as spelled in ``valid`` when it matches one ignoring case (``PPO`` -> ``ppo``), else unchanged."""
    if name is None or name in valid:
        return name
    return {v.lower(): v for v in valid}.get(name.lower(), name)


def message_of(err: BaseException) -> str:
    """One line: the error's own text (a ``KeyError`` without its quotes), else its class name."""
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    text = " ".join(str(text).split()) or type(err).__name__
    return text.removeprefix("error: ")


@contextmanager
def usage_errors(prefix: str = "") -> Iterator[None]:
    """Re-raise the input errors of the enclosed code as :class:`UsageError` (``prefix`` says where)."""
    try:
        yield
    except UsageError:
        raise
    except INPUT_ERRORS as err:
        raise UsageError(f"{prefix}{message_of(err)}") from err


def write_error_message(err: OSError) -> str:
    """One line for a refused write: what, where, why and the fix."""
    where = err.filename if err.filename is not None else "the output folder"
    why = err.strerror or message_of(err)
    fix = WRITE_FIXES.get(err.errno, "check the disk and the folder's permissions")
    return f"cannot write {where}: {why}; {fix}"


def run_cli(main: Callable[..., Any], argv: list[str] | None = None) -> NoReturn:
    """Run ``main(argv)`` as a program: bad input -> ``error: <message>`` on stderr and exit 2;
    Ctrl-C outside the code that handles it -> exit 130 without a traceback."""
    try:
        result = main(argv)
    except SystemExit as stop:
        if isinstance(stop.code, str):  # UsageError, or a SystemExit("message") from any CLI code
            print(f"error: {message_of(stop)}", file=sys.stderr)
            sys.exit(EXIT_USAGE)
        raise
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except OSError as err:
        if err.errno not in WRITE_ERRNOS:
            raise
        print(f"error: {write_error_message(err)}", file=sys.stderr)
        sys.exit(EXIT_WRITE)
    sys.exit(result if isinstance(result, int) else 0)
