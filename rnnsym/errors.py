"""The one error type users see: a clear, one-line message about bad input."""


class RnnsymError(ValueError):
    """Bad input to rnnsym: the message names the bad value and what is allowed.

    The command line prints the message on one line and exits with status 2.
    """


def listed(names, limit: int = 12) -> str:
    """``names`` for a message: all of them when there are few, else the first ones, the last one
    and how many there are in all (a network with T = 1000 has thousands of names).

    >>> listed(["a", "b"]), listed([f"w{t}" for t in range(1000)], limit=4)
    ('a, b', 'w0, w1, w2, …, w999 (1000 in all)')
    """
    names = [str(n) for n in names]
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit - 1]) + f", …, {names[-1]} ({len(names)} in all)"


def choose(kind: str, value, allowed) -> None:
    """Raise unless ``value`` is one of ``allowed``; the message lists the allowed values."""
    allowed = list(allowed)
    if value not in allowed:
        raise RnnsymError(f"unknown {kind} {value!r}; allowed: {listed(allowed)}")


def positive_int(name: str, value) -> int:
    """Return ``value`` if it is an integer >= 1 (bools excluded), else raise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RnnsymError(f"{name} must be a positive integer, got {value!r}")
    return value
