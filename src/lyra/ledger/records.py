"""The values the ledger stores and returns: one usage row, and a window's spend totals."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from lyra.money import usd_json

KINDS = ("attempt", "request")
# Tags never contain it (the gateway refuses one that does), so a row's tags split back exactly.
TAG_SEPARATOR = ","
STATUSES = ("ok", "error", "skipped")


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerRow:
    """One attempt at an upstream call, or the outcome of one request (which may span attempts).

    A request and all its attempts share `request_id`. Attempt rows are what was billed; the
    request row repeats the winning attempt's model, tokens and cost, so sums of spend read
    attempt rows only. `key_name` is a key's configured name such as "premium", never a secret.
    """

    ts: float  # epoch seconds, UTC
    request_id: str
    kind: str  # "attempt" | "request"
    task: str | None = None
    tier: str | None = None
    requested_model: str | None = None
    served_model: str | None = None
    provider: str | None = None
    key_name: str | None = None
    client: str | None = None  # gateway client name
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_nanos: int = 0  # integer nano-dollars
    cost_estimated: bool = False
    latency_ms: float = 0.0
    status: str = "ok"  # "ok" | "error" | "skipped"
    error_kind: str | None = None
    http_status: int | None = None
    attempt: int = 0
    cached: bool = False
    generation_id: str | None = None
    simulated: bool = False  # a simulator run's row: never counted against real caps
    end_user: str | None = None  # the caller's own `user` of the request (OpenAI's field), as sent
    tags: str | None = None  # the request's tags, sorted and joined by TAG_SEPARATOR ("desk:alpha,run:7")
    profile: str | None = None  # request rows: the fingerprint of the model and provider preferences sent
    refused_cap: str | None = None  # a request a budget cap refused: that cap's label ("global", "key:xai")
    attempt_kind: str | None = None  # attempt rows: "hedge" for a hedged request's second attempt


ROW_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(LedgerRow))


@dataclass(frozen=True, slots=True)
class SpendTotals:
    """Billed spend over a time window, for rebuilding the day's budget state on start.

    Money is in nano-dollars, tokens are prompt plus completion; rows without a tier, key or
    client count only towards `total_nanos`.
    """

    total_nanos: int
    by_tier: dict[str, int]
    by_key: dict[str, int]
    tokens_by_key: dict[str, int]
    by_client: dict[str, int]


def tags_text(tags: tuple[str, ...] | list[str]) -> str | None:
    """A request's tags as one row's `tags` value: sorted, each once, joined; None when there are none.

    The gateway refuses a tag holding the separator; one from a library caller has it written as a
    space, so that the row's tags still split back into the tags it was given (and none is empty).
    """
    cleaned = {tag.replace(TAG_SEPARATOR, " ").strip() for tag in tags}
    return TAG_SEPARATOR.join(sorted(cleaned - {""})) or None


def split_tags(text: str | None) -> list[str]:
    """A row's `tags` value back as the tags."""
    return text.split(TAG_SEPARATOR) if text else []


__all__ = ["KINDS", "ROW_FIELDS", "STATUSES", "TAG_SEPARATOR", "LedgerRow", "SpendTotals", "split_tags",
           "tags_text"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SummaryLine:
    """One group of a ledger summary (a model, key, task, tier, client or UTC day).

    Tokens and cost come from attempt rows (what was billed); `requests`, `errors` (failed
    requests), `cached` and the latencies (of successful requests, in milliseconds; None when
    there were none) come from request rows; `attempt_errors` counts failed attempts.
    """

    group: str | None
    requests: int = 0
    attempts: int = 0
    errors: int = 0
    attempt_errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_nanos: int = 0
    cached: int = 0
    avg_latency_ms: float | None = None
    p50_latency_ms: float | None = None
    p95_latency_ms: float | None = None
    refused: int = 0  # failed requests that a budget cap refused before any upstream call (in `errors`)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, object]:
        """The line as JSON values (the shape `lyra usage --json` and `/v1/usage` print)."""
        return asdict(self)

    def to_json(self) -> dict[str, object]:
        """to_dict plus `cost_usd`, the cost as exact USD (an orjson Fragment: serialise with orjson)."""
        return self.to_dict() | {"cost_usd": usd_json(self.cost_nanos)}

    # Scripts written when summary lines were dicts read them as mappings: `line["cost_nanos"]`,
    # `dict(line)`. Both still work.
    def keys(self) -> tuple[str, ...]:
        return _SUMMARY_FIELDS

    def __getitem__(self, name: str) -> object:
        if name not in _SUMMARY_FIELDS:
            raise KeyError(name)
        return getattr(self, name)


_SUMMARY_FIELDS = tuple(f.name for f in fields(SummaryLine))
