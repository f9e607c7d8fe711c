"""A budget cap's identity: its scope and name, how it is shown, and the key it is stored under."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CapScope(StrEnum):
    """What a cap limits: the whole day, one tier's share, one key (dollars or tokens), one client,
    one `[upstreams.*]` endpoint."""

    GLOBAL = "global"
    TIER = "tier"
    KEY = "key"
    KEY_TOKENS = "key_tokens"
    CLIENT = "client"
    UPSTREAM = "upstream"


# The storage key's short scope names (kept as they are: live state written by older versions).
_STORED = {CapScope.GLOBAL: "global", CapScope.TIER: "tier", CapScope.KEY: "key", CapScope.KEY_TOKENS: "ktok",
           CapScope.CLIENT: "client", CapScope.UPSTREAM: "up"}
_FROM_STORED = {stored: scope for scope, stored in _STORED.items()}


@dataclass(frozen=True, slots=True, order=True)
class Cap:
    """One daily cap. `label` is how people and the API see it ("global", "tier:fast",
    "key:xai", "key_tokens:xai", "client:desk", "upstream:local"); `storage_key(day)` is where the state
    keeps it."""

    scope: CapScope
    name: str = ""

    def __post_init__(self) -> None:
        if (self.scope is CapScope.GLOBAL) != (self.name == ""):
            wanted = "takes no" if self.scope is CapScope.GLOBAL else "needs a"
            raise ValueError(f"a {self.scope} cap {wanted} name")

    @classmethod
    def daily(cls) -> Cap:
        return cls(CapScope.GLOBAL)

    @classmethod
    def tier(cls, name: str) -> Cap:
        return cls(CapScope.TIER, name)

    @classmethod
    def key(cls, name: str) -> Cap:
        return cls(CapScope.KEY, name)

    @classmethod
    def key_tokens(cls, name: str) -> Cap:
        return cls(CapScope.KEY_TOKENS, name)

    @classmethod
    def client(cls, name: str) -> Cap:
        return cls(CapScope.CLIENT, name)

    @classmethod
    def upstream(cls, name: str) -> Cap:
        return cls(CapScope.UPSTREAM, name)

    @property
    def unit(self) -> str:
        """What the cap counts: "tokens" for a key's token cap, "usd" (nano-dollars) for the rest."""
        return "tokens" if self.scope is CapScope.KEY_TOKENS else "usd"

    @property
    def label(self) -> str:
        return self.scope.value if self.scope is CapScope.GLOBAL else f"{self.scope.value}:{self.name}"

    def storage_key(self, day: str) -> str:
        """The state backend's key for this cap on a budget day (YYYYMMDD)."""
        stored = _STORED[self.scope]
        return f"d{day}:{stored}" if self.scope is CapScope.GLOBAL else f"d{day}:{stored}:{self.name}"

    @classmethod
    def parse(cls, label: str) -> Cap:
        """The cap a label names; ValueError naming the label when it names none."""
        scope, _, name = label.partition(":")
        try:
            return cls(CapScope(scope), name)
        except ValueError:
            raise ValueError(f"{label!r} is not a cap; use global, tier:NAME, key:NAME, key_tokens:NAME, "
                             "client:NAME or upstream:NAME") from None

    @classmethod
    def find(cls, label: str) -> Cap | None:
        """The cap a label names, or None (a refusal that is no cap's, such as an unpriceable part)."""
        try:
            return cls.parse(label)
        except ValueError:
            return None

    @classmethod
    def from_storage_key(cls, key: str) -> tuple[str, Cap]:
        """The budget day and the cap of a state key written by `storage_key`."""
        day, _, rest = key.partition(":")
        stored, _, name = rest.partition(":")
        if not day.startswith("d") or stored not in _FROM_STORED:
            raise ValueError(f"{key!r} is not a cap's storage key")
        return day[1:], cls(_FROM_STORED[stored], name)

    def __str__(self) -> str:
        return self.label


__all__ = ["Cap", "CapScope"]
