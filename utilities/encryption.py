"""Secrets at rest: camera and mail credentials are stored Fernet-encrypted.

The keys come from ``settings.CREDENTIALS_KEYS`` (newest first), so an operator can
rotate: add a new key in front, re-save, then drop the old one.
"""

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key.strip().encode()) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured("CREDENTIALS_KEYS must hold url-safe base64 Fernet keys") from exc


def encrypt(plain: str) -> str:
    return _fernet(tuple(settings.CREDENTIALS_KEYS)).encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet(tuple(settings.CREDENTIALS_KEYS)).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ImproperlyConfigured("A stored credential cannot be decrypted with CREDENTIALS_KEYS") from exc


class EncryptedTextField(models.TextField):
    """A text column whose value is encrypted in the database and plain in Python.

    The empty string stays empty, so "no credential" needs no key to read.
    """

    def from_db_value(self, value, expression, connection):
        if not value:
            return value
        return decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if not value:
            return value
        return encrypt(value)
