"""Exact money and quantities.

Money is ``decimal.Decimal`` from the wire to the database and back; no value ever passes
through a binary float (JSON is parsed with ``parse_float=Decimal``).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from .errors import ApiError

MAX_MONEY = Decimal(10) ** 12
MAX_DECIMALS = 6
MAX_QTY = 1_000_000
CENT = Decimal("0.01")
# Up to 12 digits, then up to 6 decimals: below 10^12, no sign, no exponent, no spaces.
_PLAIN_MONEY = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,6})?")


def parse_money(value: object, field: str, code: str) -> Decimal:
    """A non-negative decimal below 10^12 with at most 6 decimal places, or ``ApiError``."""
    if type(value) is str and _PLAIN_MONEY.fullmatch(value):
        return Decimal(value)  # what the checks below come to, for the usual "12.34"
    accepted = "a number or numeric string >= 0 and below 10^12, at most 6 decimal places"
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise ApiError(code, f"{field} must be {accepted}; got {_show(value)}")
    try:
        amount = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except (InvalidOperation, ValueError):
        raise ApiError(code, f"{field} must be {accepted}; got {_show(value)}") from None
    if not amount.is_finite() or amount < 0 or amount >= MAX_MONEY:
        raise ApiError(code, f"{field} must be {accepted}; got {_show(value)}")
    if _decimals(amount) > MAX_DECIMALS:
        amount = amount.normalize()  # 1.5000000 is 1.5
        if _decimals(amount) > MAX_DECIMALS:
            raise ApiError(code, f"{field} must be {accepted}; got {_show(value)}")
    return amount + 0  # drops a negative zero


def parse_qty(value: object, field: str, code: str) -> int:
    """A whole number from 1 to 1,000,000 (a numeric string is accepted), or ``ApiError``."""
    if type(value) is int and 1 <= value <= MAX_QTY:
        return value  # what the checks below come to, for the usual 2
    accepted = f"a whole number from 1 to {MAX_QTY:,}"
    if isinstance(value, bool):
        raise ApiError(code, f"{field} must be {accepted}; got {_show(value)}")
    number: Decimal
    try:
        if isinstance(value, int):
            number = Decimal(value)
        elif isinstance(value, (str, Decimal)):
            number = Decimal(value.strip()) if isinstance(value, str) else value
        else:
            raise ApiError(code, f"{field} must be {accepted}; got {_show(value)}")
    except (InvalidOperation, ValueError):
        raise ApiError(code, f"{field} must be {accepted}; got {_show(value)}") from None
    if not number.is_finite() or number != number.to_integral_value() or not 1 <= number <= MAX_QTY:
        raise ApiError(code, f"{field} must be {accepted}; got {_show(value)}")
    return int(number)


def plain(amount: Decimal) -> str:
    """The exact amount in positional notation, as ``format(amount, "f")`` writes it: ``str``
    does the same, five times faster, unless it would write an exponent (``1E+2``,
    ``1E-7``)."""
    text = str(amount)
    return text if "E" not in text else format(amount, "f")


def format_money(amount: Decimal) -> str:
    """The exact amount as text, with two decimals or as many as it needs: ``35.5`` ->
    ``"35.50"``, ``0.200000`` -> ``"0.20"`` (sums of 6-decimal prices keep their zeros),
    ``0.333333`` -> ``"0.333333"``. Text only, so no context precision can round it."""
    whole, _, fraction = plain(amount).partition(".")
    return f"{whole}.{fraction.rstrip('0').ljust(2, '0')}"


def _decimals(amount: Decimal) -> int:
    exponent = amount.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _show(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        value = Decimal(value)  # repr() refuses an int of more than 4300 digits
    text = repr(value) if not isinstance(value, Decimal) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."
