"""Bearer tokens of gateway clients: hashed with sha256, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from lyra.config import ClientSettings
from lyra.service.errors import ApiError


@dataclass(frozen=True, slots=True)
class Client:
    """An authenticated caller: its name in `[clients.<name>]` and its settings."""

    name: str
    settings: ClientSettings

    @property
    def admin(self) -> bool:
        """An operator's token: it sees every client's usage, the keys and the shared caps."""
        return self.settings.role == "admin"


class ClientAuth:
    """Finds the client whose token_sha256 matches a request's bearer token."""

    def __init__(self, clients: Mapping[str, ClientSettings]) -> None:
        self._clients = [(bytes.fromhex(c.token_sha256), Client(name, c)) for name, c in clients.items()]

    def authenticate(self, authorization: str | None) -> Client:
        """The client for an Authorization header, or ApiError 401 (the token is never echoed)."""
        if not authorization:
            raise _unauthorized("missing bearer token: send `Authorization: Bearer <token>`")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("malformed Authorization header: expected `Bearer <token>`")
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        found: Client | None = None
        # Compare against every client, without stopping early, so timing says nothing.
        for expected, client in self._clients:
            if hmac.compare_digest(digest, expected):
                found = client
        if found is None:
            raise _unauthorized("invalid bearer token")
        return found


def _unauthorized(message: str) -> ApiError:
    # OpenAI's type for a bad or missing key: clients (LiteLLM, the openai SDK) map it to their
    # authentication error, not to a bad request.
    return ApiError(401, message, type="authentication_error", code="invalid_api_key")
