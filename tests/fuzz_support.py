"""What the fuzz tests share: the envelope every JSON answer must be, and hostile inputs."""

from __future__ import annotations

import json
from typing import Any

from recotrack.domain.errors import STATUS

# Inputs that have broken JSON parsers and the code behind them: huge and tiny numbers, more
# digits than int() takes, nesting deeper than the recursion limit, invalid UTF-8, NUL bytes,
# lone surrogates, percent signs, byte order marks, very long strings.
HOSTILE_TEXT = [
    "1e400",
    "-1e400",
    "1e-400",
    "0e-999999999",
    "1E+999999999999999999",
    "9" * 5000,
    "-" + "9" * 4300,
    "[" * 100_000,
    '{"a":' * 50_000,
    "]" * 10,
    '"\\ud800"',
    '"\\udc00\\ud800"',
    '"\\u0000"',
    "NaN",
    "Infinity",
    "-Infinity",
    "\ufeff{}",
    "\x00",
    "%",
    "%7C",
    "%zz",
    "a" * 300_000,
    "",
    " ",
    "null",
    "{}",
    "[]",
    '{"site": null}',
]
HOSTILE_BYTES = [
    b"\xff\xfe\x00\x00",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b'{"site": "\xff"}',
    b"\x00\x00\x00\x00",
    b"\xef\xbb\xbf{}",
]
HOSTILE_STRINGS = [
    "\x00",
    "a\x00b",
    "\ud800",
    "\udfff",
    "\u2028",
    "\t",
    "|",
    "%7C",
    "%7c",
    "%00",
    "%ff",
    "%",
    "new",
    "NEW",
    " ",
    "x" * 129,
    "x" * 257,
    "x" * 100_000,
    "1e400",
    "9" * 5000,
    "-0",
    "0x10",
    "1_000",
    "١٢٣",  # Arabic-Indic digits: str.isdigit() says yes
    "²",  # superscript two: isdigit() yes, int() no
]


def assert_envelope(status: int, content_type: str, body: bytes, where: str = "") -> None:
    """A JSON answer is the envelope of API.md 2: status; errors exactly when not OK, each with
    a known code and a message; fail exactly for 4xx/5xx; and never a 5xx here."""
    assert status < 500, f"{status} {body[:500]!r} {where}"
    assert content_type == "application/json; charset=utf-8", f"{content_type} {where}"
    envelope: Any = json.loads(body)
    assert isinstance(envelope, dict), where
    assert envelope.get("status") in ("OK", "warning", "fail"), f"{envelope} {where}"
    assert (envelope["status"] == "fail") == (status >= 400), f"{status} {envelope} {where}"
    if envelope["status"] == "OK":
        assert "errors" not in envelope, f"{envelope} {where}"
        return
    errors = envelope.get("errors")
    assert isinstance(errors, list) and errors, f"{envelope} {where}"
    for error in errors:
        assert error["code"] in STATUS, f"{envelope} {where}"
        assert isinstance(error["message"], str) and error["message"], f"{envelope} {where}"
