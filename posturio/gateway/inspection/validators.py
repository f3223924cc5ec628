"""Checks that turn a pattern match into a finding: checksums beat entropy."""

from __future__ import annotations

import base64
import binascii
import json
import math
import zlib
from collections import Counter

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def luhn(digits: str) -> bool:
    nums = [int(c) for c in digits if c.isdigit()]
    if not 13 <= len(nums) <= 19:
        return False
    total = 0
    for i, n in enumerate(reversed(nums)):
        if i % 2:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return total % 10 == 0


def iban(value: str) -> bool:
    s = value.replace(" ", "").upper()
    if not 15 <= len(s) <= 34 or not s[:2].isalpha() or not s[2:4].isdigit():
        return False
    rearranged = s[4:] + s[:4]
    try:
        number = int("".join(str(int(c, 36)) for c in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


def github_classic(token: str) -> bool:
    """ghp_/gho_/ghu_/ghs_/ghr_ tokens end with a base62 CRC32 of the 30-char body."""
    body, check = token[4:34], token[34:]
    if len(check) != 6:
        return False
    crc = zlib.crc32(body.encode()) & 0xFFFFFFFF
    encoded = ""
    while crc:
        crc, r = divmod(crc, 62)
        encoded = _B62[r] + encoded
    return encoded.rjust(6, "0") == check


def us_ssn(value: str) -> bool:
    digits = value.replace("-", "").replace(" ", "")
    if len(digits) != 9 or not digits.isdigit():
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def jwt(token: str) -> bool:
    header = token.split(".", 1)[0]
    try:
        decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return False
    return isinstance(decoded, dict) and "alg" in decoded


def ipv4(value: str) -> bool:
    parts = value.split(".")
    if len(parts) != 4 or any(not p.isdigit() or (len(p) > 1 and p[0] == "0") for p in parts):
        return False
    octets = [int(p) for p in parts]
    if any(o > 255 for o in octets):
        return False
    # Version-number look-alikes (1.2.3.4) and unspecified/broadcast are not addresses.
    return not (octets[0] == 0 or octets == [255] * 4 or max(octets) < 10)


def entropy(value: str) -> float:
    if not value:
        return 0.0
    counts = Counter(value)
    return -sum(c / len(value) * math.log2(c / len(value)) for c in counts.values())


PLACEHOLDER_MARKS = (
    "example",
    "xxxx",
    "your_",
    "your-",
    "<",
    "${",
    "{{",
    "****",
    "changeme",
    "dummy",
    "sample",
    "placeholder",
    "redacted",
)


def looks_fake(value: str) -> bool:
    """Documentation values and templates are not findings."""
    low = value.lower()
    if any(mark in low for mark in PLACEHOLDER_MARKS):
        return True
    stripped = value.split("_")[-1]
    return len(set(stripped)) <= 3  # aaaaaaaa…, 00000000…
