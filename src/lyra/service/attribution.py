"""Who a request's spend belongs to inside a client: OpenAI's `user`, and tags.

Tags come from OpenAI's `metadata` object in the body (each pair as `key:value`) and from the
`x-lyra-tags` header (comma-separated). Both are the caller's own data, stored on every ledger
row of the request and printed as sent, so they are bounded and refused (a 400 naming the field)
when they could not be printed literally on one line or when they look like a secret.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from lyra.ledger import TAG_SEPARATOR
from lyra.log import mask_secrets
from lyra.service.errors import ApiError, bad_request

TAGS_HEADER = "x-lyra-tags"
MAX_USER = 256
MAX_TAGS = 16  # OpenAI's bound on metadata pairs; also the bound on all of a request's tags together
MAX_KEY = 64  # OpenAI's bound on a metadata key
MAX_VALUE = 128  # tighter than OpenAI's 512: every ledger row of the request carries it
MAX_TAG = MAX_KEY + 1 + MAX_VALUE


def parse_user(value: object) -> str | None:
    """The body's `user`: a string of printable characters, at most MAX_USER; "" is no user."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise bad_request("user", "user: expected a string")
    if len(value) > MAX_USER:
        raise bad_request("user", f"user: {len(value)} characters, more than {MAX_USER}")
    _check_text("user", value, forbidden="")
    return value


def metadata_tags(metadata: object) -> tuple[str, ...]:
    """OpenAI's `metadata` object as tags: each string pair as `key:value`."""
    if metadata is None:
        return ()
    if not isinstance(metadata, Mapping):
        raise bad_request("metadata", "metadata: expected an object of string keys and string values")
    if len(metadata) > MAX_TAGS:
        raise bad_request("metadata", f"metadata: {len(metadata)} pairs, more than {MAX_TAGS}")
    tags = []
    for key, value in metadata.items():
        field = f"metadata.{key}"
        if not key or len(key) > MAX_KEY:
            raise bad_request("metadata", f"metadata: a key must have 1 to {MAX_KEY} characters")
        _check_text("metadata", key, what="a key", forbidden=TAG_SEPARATOR + ":")
        if not isinstance(value, str):
            raise bad_request(field, f"{field}: expected a string")
        if not value or len(value) > MAX_VALUE:
            raise bad_request(field, f"{field}: a value must have 1 to {MAX_VALUE} characters")
        _check_text(field, value)
        tags.append(f"{key}:{value}")
    return tuple(tags)


def header_tags(header: str | None) -> tuple[str, ...]:
    """The `x-lyra-tags` header's comma-separated tags, each trimmed; empty items are skipped."""
    if not header:
        return ()
    tags = []
    for item in header.split(TAG_SEPARATOR):
        tag = item.strip()
        if not tag:
            continue
        if len(tag) > MAX_TAG:
            raise bad_request(TAGS_HEADER, f"{TAGS_HEADER}: a tag has {len(tag)} characters, "
                                           f"more than {MAX_TAG}")
        if not tag.isascii():
            raise bad_request(TAGS_HEADER, f"{TAGS_HEADER}: a tag must be ASCII "
                                           "(a header carries no encoding)")
        _check_text(TAGS_HEADER, tag, what="a tag")
        tags.append(tag)
    return tuple(tags)


def request_tags(*sources: Iterable[str]) -> tuple[str, ...]:
    """Every source's tags, each once, sorted; at most MAX_TAGS in all."""
    tags = tuple(sorted({tag for source in sources for tag in source}))
    if len(tags) > MAX_TAGS:
        raise ApiError(400, f"tags: {len(tags)} distinct tags from metadata and {TAGS_HEADER}, more than "
                            f"{MAX_TAGS}", param="metadata", code="invalid_value")
    return tags


def _check_text(field: str, value: str, *, what: str = "the value", forbidden: str = TAG_SEPARATOR) -> None:
    if any(ch in forbidden for ch in value):
        shown = " or ".join(repr(ch) for ch in forbidden)
        raise bad_request(field, f"{field}: {what} may not contain {shown}")
    if not value.isprintable() or value != value.strip():
        raise bad_request(field, f"{field}: {what} must be printable characters, with no space at either end")
    if mask_secrets(value) != value:
        raise bad_request(field, f"{field}: {what} looks like a key or a token; send an id, never a secret")

