"""Encryption at rest for secrets the product must use later (provider credentials).

Fernet (AES-128-CBC + HMAC-SHA256) from `cryptography`. POSTURIO_ENCRYPTION_KEY may list
several comma-separated keys: the first encrypts, all decrypt (rotation).
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from posturio.config import ConfigError


class SecretBox:
    def __init__(self, keys: str) -> None:
        try:
            self._fernet = MultiFernet([Fernet(k.strip()) for k in keys.split(",") if k.strip()])
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                "POSTURIO_ENCRYPTION_KEY: each key must be 32 url-safe base64-encoded bytes "
                "(make one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())')"
            ) from exc

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken as exc:
            raise ConfigError(
                "a stored secret cannot be decrypted: POSTURIO_ENCRYPTION_KEY changed "
                "without keeping the old key in the list"
            ) from exc
