"""Password hashing (argon2id) and API key material (public prefix + hashed secret)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters

KEY_MARK = "pst"
_PREFIX_BYTES = 6  # 8 url-safe chars: public, shown in lists and logs
_SECRET_BYTES = 32  # 256 bits: a fast hash is enough, no slow KDF needed for keys


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        # Same work as a real check so a missing account is not told apart by timing.
        _hasher.hash(password)
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True, slots=True)
class NewKey:
    prefix: str
    secret_hash: bytes
    plaintext: str  # shown to the caller once, never stored


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def generate_api_key() -> NewKey:
    prefix = secrets.token_urlsafe(_PREFIX_BYTES).replace("_", "x").replace("-", "y")
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    return NewKey(
        prefix=prefix, secret_hash=hash_secret(secret), plaintext=f"{KEY_MARK}_{prefix}_{secret}"
    )


def split_api_key(token: str) -> tuple[str, str] | None:
    """`pst_<prefix>_<secret>` -> (prefix, secret); None when it is not shaped like a key."""
    mark, sep, rest = token.partition("_")
    if mark != KEY_MARK or not sep:
        return None
    prefix, sep, secret = rest.partition("_")
    if not sep or len(prefix) != 8 or len(secret) < 32 or len(token) > 200:
        return None
    return prefix, secret


def secret_matches(secret: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
