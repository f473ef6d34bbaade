"""Write-key authentication: HTTP Basic (key as user name) or `writeKey` in the body."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection


def basic_auth_user(header: str | None) -> str | None:
    """The user name of an `Authorization: Basic ...` header, or None.

    Segment clients send `base64("KEY:")`; RudderStack sends `base64('KEY:""')`. The password is
    ignored, as Segment does: the write key is the user name.
    """
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, _, _password = decoded.partition(":")
    return user or None


def body_write_key(obj: object) -> str | None:
    """The `writeKey` field of a decoded body, when it is a non-empty string."""
    if isinstance(obj, dict):
        key = obj.get("writeKey")
        if isinstance(key, str) and key:
            return key
    return None


def authorized(keys: Collection[str], *candidates: str | None) -> bool:
    """True when no key is configured, or when one of the candidates is a configured key."""
    if not keys:
        return True
    return any(c is not None and c in keys for c in candidates)
