"""Back-off that doubles while a failure lasts, between a first and a longest delay."""


def next_backoff(previous: float, first: float, longest: float) -> float:
    """The delay after ``previous`` (0: none yet): ``first``, then doubling up to ``longest``."""
    return min(max(previous * 2, first), longest)
