"""Pruning rates: the one validator every layer uses.

A rate is the fraction of a channel group (or of a module's groups) to
remove: a finite number in [0, 1). Rates are compared after rounding to
`RATE_DECIMALS` decimals, so 0.3 and 0.30000001 are the same rate.
"""

import math
import numbers

RATE_DECIMALS = 4


def check_rate(rate, what="rate"):
    """`rate` as a float in [0, 1), or a ValueError naming `what`.

    Example:
        >>> check_rate(0.5)
        0.5
        >>> check_rate(1.0, "rates['conv1']")
        Traceback (most recent call last):
        ...
        ValueError: rates['conv1'] must be a number in [0, 1), got 1.0
    """
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) \
            or not math.isfinite(rate) or not 0.0 <= float(rate) < 1.0:
        raise ValueError(f"{what} must be a number in [0, 1), got {rate!r}")
    return float(rate)


def check_rates(rates, what="rates", item="{what}[{i}]"):
    """A tuple of valid rates (at least one), each rounded to `RATE_DECIMALS`.

    `item` names one entry in error messages (`{what}` and `{i}` are filled in).

    Example:
        >>> check_rates([0.3, 0.50000001])
        (0.3, 0.5)
        >>> check_rates([0.3, 2], "config 4", item="{what}, module {i}")
        Traceback (most recent call last):
        ...
        ValueError: config 4, module 1 must be a number in [0, 1), got 2
    """
    if isinstance(rates, (str, bytes)) or not hasattr(rates, "__iter__"):
        raise ValueError(f"{what} is not a sequence of rates: {rates!r}")
    out = tuple(round(check_rate(r, item.format(what=what, i=i)), RATE_DECIMALS)
                for i, r in enumerate(rates))
    if not out:
        raise ValueError(f"{what} has no rates")
    return out


def round_rates(rates):
    """Rates rounded to `RATE_DECIMALS` (no validation): the comparable form.

    Example:
        >>> round_rates([0.30000001, 0.5])
        (0.3, 0.5)
    """
    return tuple(round(float(r), RATE_DECIMALS) for r in rates)
