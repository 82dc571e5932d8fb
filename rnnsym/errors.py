"""The one error type users see: a clear, one-line message about bad input."""


class RnnsymError(ValueError):
    """Bad input to rnnsym: the message names the bad value and what is allowed.

    The command line prints the message on one line and exits with status 2.
    """


def choose(kind: str, value, allowed) -> None:
    """Raise unless ``value`` is one of ``allowed``; the message lists the allowed values."""
    allowed = list(allowed)
    if value not in allowed:
        raise RnnsymError(f"unknown {kind} {value!r}; allowed: {', '.join(map(str, allowed))}")


def positive_int(name: str, value) -> int:
    """Return ``value`` if it is an integer >= 1 (bools excluded), else raise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RnnsymError(f"{name} must be a positive integer, got {value!r}")
    return value
