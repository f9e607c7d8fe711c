"""Database and service URLs with their passwords masked, for reprs, errors and log lines."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

MASK = "***"


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***: postgresql://lyra:***@host/db.

    A URL that cannot be parsed is masked whole rather than shown, since it may hold a secret
    in a place the parser did not recognise.
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return MASK
    if password is None and "@" not in parts.netloc:
        return url
    user_info, _, host = parts.netloc.rpartition("@")
    user, has_password, _ = user_info.partition(":")
    if not has_password and user and password is None:
        # redis://secret@host: redis-py takes a lone user part as the password.
        user_info = MASK if parts.scheme.startswith(("redis", "rediss", "unix")) else user
    else:
        user_info = f"{user}:{MASK}"
    return urlunsplit(parts._replace(netloc=f"{user_info}@{host}"))


def mask_optional_url(url: str | None) -> str | None:
    """mask_url for an optional URL."""
    return None if url is None else mask_url(url)


__all__ = ["MASK", "mask_optional_url", "mask_url"]
