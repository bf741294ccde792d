"""The client secrets of vendor connections, encrypted at rest (SPEC §9).

CONNECTION_KEYS is a comma-separated list of Fernet keys: the first encrypts, every one decrypts,
so keys rotate by putting a new key first and running `rotate_connection_keys`. Without keys a
development setup (DEBUG) derives one from SECRET_KEY; production refuses to store a secret.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class SecretUnreadable(Exception):
    """The stored secret was encrypted with a key CONNECTION_KEYS no longer holds."""


def generate_key() -> str:
    """A new key for CONNECTION_KEYS."""
    return Fernet.generate_key().decode()


def _fernet() -> MultiFernet:
    keys: list[str] = list(settings.CONNECTION_KEYS)
    if not keys:
        if not settings.DEBUG:
            raise ImproperlyConfigured("Set CONNECTION_KEYS to store vendor connections (docs/collection.md).")
        derived = hashlib.sha256(f"vendor-connections:{settings.SECRET_KEY}".encode()).digest()
        keys = [base64.urlsafe_b64encode(derived).decode()]
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError:
        raise ImproperlyConfigured("CONNECTION_KEYS holds a key that is not a Fernet key (generate_key).") from None


def encrypt(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "The stored client secret cannot be decrypted with CONNECTION_KEYS: enter the secret again."
        ) from None


def rotate(token: str) -> str:
    """The same secret, encrypted again with the first key."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable("A stored client secret cannot be decrypted with any of CONNECTION_KEYS.") from None
