"""Go's ``strconv`` text conventions that Consul's error messages and filter values follow."""

import re

_GO_INT_RANGE = (-(2**63), 2**63 - 1)
_DIGITS = re.compile(r"[0-9a-fA-F][0-9a-fA-F_]*")
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_ESCAPES.update({"\\": "\\", '"': '"'})
_QUOTED = {value: f"\\{key}" for key, value in _ESCAPES.items()}


def go_quote(text: str) -> str:
    """``text`` quoted as Go's ``%q`` / ``strconv.Quote`` prints it."""
    out = []
    for char in text:
        if char in _QUOTED:
            out.append(_QUOTED[char])
        elif char.isprintable() or char == " ":
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def go_unquote(literal: str) -> str:
    """Go's ``strconv.Unquote`` of a backquoted or double-quoted literal; ``ValueError`` if bad."""
    body = literal[1:-1]
    if literal[0] == "`":
        return body.replace("\r", "")
    if "\n" in body:
        raise ValueError("invalid syntax")
    out: list[str] = []
    position = 0
    while position < len(body):
        char = body[position]
        if char != "\\":
            out.append(char)
            position += 1
            continue
        decoded, position = _escape(body, position + 1)
        out.append(decoded)
    return "".join(out)


def _escape(body: str, position: int) -> tuple[str, int]:
    """The character of the escape starting at ``body[position]`` and the position after it."""
    kind = body[position : position + 1]
    if kind in _ESCAPES:
        return _ESCAPES[kind], position + 1
    widths = {"x": 2, "u": 4, "U": 8}
    if kind in widths:
        digits = body[position + 1 : position + 1 + widths[kind]]
        if len(digits) != widths[kind] or not all(c in "0123456789abcdefABCDEF" for c in digits):
            raise ValueError("invalid syntax")
        code = int(digits, 16)
        if kind != "x" and (code > 0x10FFFF or 0xD800 <= code <= 0xDFFF):
            raise ValueError("invalid syntax")
        return chr(code), position + 1 + widths[kind]
    digits = body[position : position + 3]
    if len(digits) == 3 and all(c in "01234567" for c in digits) and int(digits, 8) <= 0xFF:
        return chr(int(digits, 8)), position + 3
    raise ValueError("invalid syntax")


def go_parse_int(text: str) -> int:
    """Go's ``strconv.ParseInt(text, 0, 64)``: base prefixes, ``_`` separators after a prefix."""
    digits = text[1:] if text[:1] in "+-" else text
    bases = {"0x": 16, "0X": 16, "0o": 8, "0O": 8, "0b": 2, "0B": 2}
    base = bases.get(digits[:2], 8 if len(digits) > 1 and digits[0] == "0" else 10)
    body = digits[2:] if digits[:2] in bases else digits
    valid = _DIGITS.fullmatch(body) is not None and "__" not in body and not body.endswith("_")
    if "_" in body and base == 10:
        valid = False
    try:
        value = int(body.replace("_", ""), base) if valid else None
    except ValueError:
        value = None
    if value is None:
        raise ValueError(f"strconv.ParseInt: parsing {go_quote(text)}: invalid syntax")
    value = -value if text.startswith("-") else value
    if not _GO_INT_RANGE[0] <= value <= _GO_INT_RANGE[1]:
        raise ValueError(f"strconv.ParseInt: parsing {go_quote(text)}: value out of range")
    return value


def go_parse_bool(text: str) -> bool:
    """Go's ``strconv.ParseBool``."""
    if text in _GO_TRUE:
        return True
    if text in _GO_FALSE:
        return False
    raise ValueError(f"strconv.ParseBool: parsing {go_quote(text)}: invalid syntax")
