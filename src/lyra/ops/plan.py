"""The daily cost plan: calls and dollars per function, tier and key from the schedule, beside every cap."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from lyra.catalog.models import Catalog
from lyra.config import Settings, TaskSettings
from lyra.days import DAY_S, cadence_seconds, format_every
from lyra.ledger import Ledger
from lyra.money import format_usd, nanos_to_usd, usd_to_nanos
from lyra.ops.schedule import session_length_s, ticks_in
from lyra.trading.stages import stage

HISTORY_S = 7 * DAY_S
EXECUTION_MAX_TOKENS = stage("execution_monitoring").max_tokens or 150  # what that stage asks for
HEALTH_TOKENS = (200, 100)  # the metrics JSON and a two-sentence comment


@dataclass(frozen=True, slots=True)
class Tokens:
    """Expected tokens of one call, and where the numbers come from ("ledger" or "config")."""

    prompt: int
    completion: int
    source: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanLine:
    """One function's planned day: how often, on which model and key, at what cost."""

    function: str
    every: str
    tier: str
    model: str
    key: str
    calls: int
    tokens: Tokens
    cost_nanos: int
    keys: tuple[str, ...] = ()  # the keys it may use, in the router's order of preference
    key_calls: tuple[tuple[str, int], ...] = ()  # calls per key once earlier keys are full

    @property
    def day_tokens(self) -> int:
        return self.calls * self.call_tokens

    @property
    def call_tokens(self) -> int:
        return self.tokens.prompt + self.tokens.completion

    @property
    def call_nanos(self) -> int:
        return self.cost_nanos // self.calls if self.calls else 0

    @property
    def key_label(self) -> str:
        used = [key for key, calls in self.key_calls if calls] or [self.key]
        return ">".join(used)


@dataclass(frozen=True, slots=True)
class CapCheck:
    """One cap beside what the plan puts under it."""

    cap: str  # "daily", "tier advanced", "key grok4", "key grok4 tokens"
    limit: int  # nano-dollars, or tokens for token caps
    planned: int
    unit: str = "usd"

    @property
    def broken(self) -> bool:
        return self.planned > self.limit


@dataclass(slots=True)
class Plan:
    """The whole plan: lines, totals by tier and key, caps, and warnings with a fix each."""

    lines: list[PlanLine]
    caps: list[CapCheck]
    session_s: int
    warnings: list[str] = field(default_factory=list)

    @property
    def total_nanos(self) -> int:
        return sum(line.cost_nanos for line in self.lines)

    @property
    def total_calls(self) -> int:
        return sum(line.calls for line in self.lines)

    def share(self, line: PlanLine) -> float:
        """The line's share of all calls of the day."""
        return line.calls / self.total_calls if self.total_calls else 0.0

    def by(self, attribute: str) -> dict[str, int]:
        """Planned nano-dollars by "tier", "function" or "key" (keys after spill-over)."""
        totals: dict[str, int] = defaultdict(int)
        for line in self.lines:
            if attribute == "key":
                for key, calls in line.key_calls or ((line.key, line.calls),):
                    totals[key] += line.call_nanos * calls
            else:
                totals[getattr(line, attribute)] += line.cost_nanos
        return dict(totals)

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_s": self.session_s,
            "total_usd": _usd(self.total_nanos),
            "total_calls": self.total_calls,
            "functions": [
                {
                    "function": line.function,
                    "every": line.every,
                    "tier": line.tier,
                    "model": line.model,
                    "key": line.key_label,
                    "calls_per_day": line.calls,
                    "prompt_tokens": line.tokens.prompt,
                    "completion_tokens": line.tokens.completion,
                    "tokens_from": line.tokens.source,
                    "usd_per_day": _usd(line.cost_nanos),
                    "call_share": round(self.share(line), 4),
                }
                for line in self.lines
            ],
            "tiers": {k: _usd(v) for k, v in self.by("tier").items()},
            "keys": {k: _usd(v) for k, v in self.by("key").items()},
            "caps": [
                {
                    "cap": c.cap,
                    "unit": c.unit,
                    "planned": _amount(c.planned, c.unit),
                    "limit": _amount(c.limit, c.unit),
                    "broken": c.broken,
                }
                for c in self.caps
            ],
            "warnings": self.warnings,
        }


def _usd(nanos: int) -> Decimal:
    return nanos_to_usd(nanos)


def _amount(value: int, unit: str) -> Decimal | int:
    return _usd(value) if unit == "usd" else value


def measured_tokens(ledger: Ledger, *, now: float | None = None) -> dict[str, Tokens]:
    """Average prompt and completion tokens of successful billed calls per task over the last week."""
    since = (now if now is not None else time.time()) - HISTORY_S
    found: dict[str, Tokens] = {}
    for line in ledger.summary(since_ts=since, by="task"):
        ok = line.attempts - line.attempt_errors
        if line.group is not None and ok > 0 and line.prompt_tokens > 0:
            found[line.group] = Tokens(round(line.prompt_tokens / ok), round(line.completion_tokens / ok),
                                       "ledger")
    return found


class Planner:
    """Builds a Plan from settings, the catalogue and (optionally) measured tokens per task."""

    def __init__(
        self, settings: Settings, catalog: Catalog, measured: dict[str, Tokens] | None = None
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.measured = measured or {}
        self.session_s = session_length_s(settings)

    def tokens(self, task: str) -> Tokens:
        if task in self.measured:
            return self.measured[task]
        cfg = self.settings.tasks[task]
        return Tokens(
            cfg.expected_prompt_tokens, min(cfg.expected_completion_tokens, cfg.max_tokens), "config"
        )

    def cost(self, model: str, tokens: Tokens, calls: int) -> int:
        return self.catalog.get(model).cost_nanos(tokens.prompt, tokens.completion) * calls

    def lines(self) -> list[PlanLine]:
        """Every line of the day, its calls spread over its keys."""
        lines = self.task_lines()
        signals = sum(line.calls for line in lines if line.function == "signal_generation")
        trades = round(signals * self.settings.schedule.trade_share)
        lines += self.trade_lines(trades)
        lines += self.monitoring_lines(trades)
        return self.spill([line for line in lines if line.calls > 0])

    def build(self) -> Plan:
        lines = self.lines()
        plan = Plan(lines=lines, caps=self.caps(lines), session_s=self.session_s)
        plan.warnings = [self.warning(plan, cap) for cap in plan.caps if cap.broken]
        return plan

    def _route(self, cfg: TaskSettings) -> tuple[str, tuple[str, ...]]:
        tier = self.settings.tiers[cfg.tier]
        return (cfg.models or tier.models)[0], tuple(cfg.keys or tier.keys)

    def task_line(self, name: str, *, every_s: int | None = None, model: str | None = None) -> PlanLine:
        """A scheduled task's line, optionally at another cadence or on another model."""
        cfg = self.settings.tasks[name]
        first_model, keys = self._route(cfg)
        model = model or first_model
        tokens = self.tokens(name)
        every = every_s if every_s is not None else cadence_seconds(cfg.every)
        if every is not None:
            calls = ticks_in(every, self.session_s) * max(1, len(cfg.symbols))
            label = format_every(every)
        else:
            calls = self.settings.schedule.code_requests_per_day if cfg.every == "on_demand" else 0
            label = cfg.every
        return PlanLine(
            function=name,
            every=label,
            tier=cfg.tier,
            model=model,
            key=keys[0],
            calls=calls,
            tokens=tokens,
            cost_nanos=self.cost(model, tokens, calls),
            keys=keys,
        )

    def task_lines(self) -> list[PlanLine]:
        return [
            self.task_line(name) for name, cfg in self.settings.tasks.items() if cfg.every != "before_trade"
        ]

    def trade_lines(self, trades: int) -> list[PlanLine]:
        """Per proposed trade: each before_trade task, and the first panel the final consensus asks."""
        lines = []
        for name, cfg in self.settings.tasks.items():
            if cfg.every == "before_trade":
                line = self.task_line(name)
                lines.append(
                    PlanLine(
                        function=name,
                        every="before_trade",
                        tier=line.tier,
                        model=line.model,
                        key=line.key,
                        calls=trades,
                        tokens=line.tokens,
                        keys=line.keys,
                        cost_nanos=self.cost(line.model, line.tokens, trades),
                    )
                )
        for panel_name in self._cascade():
            panel = self.settings.panels[panel_name]
            tokens = self.tokens(panel.task)
            tokens = Tokens(tokens.prompt, min(tokens.completion, panel.max_tokens), tokens.source)
            for member in panel.members:
                tier = self.catalog.get(member.model).tier
                lines.append(
                    PlanLine(
                        function=f"final_decision:{panel_name}",
                        every="before_trade",
                        tier=tier,
                        model=member.model,
                        key=member.key,
                        calls=trades,
                        tokens=tokens,
                        cost_nanos=self.cost(member.model, tokens, trades),
                    )
                )
        return lines

    def _cascade(self) -> list[str]:
        """The panels a final decision may ask: below the escalation notional the cheap step first, and
        (as an upper bound) the escalation every time."""
        name = self.settings.schedule.final_panel
        panel = self.settings.panels.get(name)
        if panel is None:
            return []
        notional = self.settings.schedule.proposed_notional_usd
        if panel.escalate_from and notional < panel.escalate_notional_usd:
            return [panel.escalate_from, name]
        return [name]

    def monitoring_lines(self, trades: int) -> list[PlanLine]:
        """Fast-tier execution monitoring per trade and the periodic health summary."""
        fast = self.settings.tiers.get("fast")
        if fast is None:
            return []
        model, key, keys = fast.models[0], fast.keys[0], tuple(fast.keys)
        execution = Tokens(
            self.tokens("signal_generation").prompt if "signal_generation" in self.settings.tasks else 500,
            EXECUTION_MAX_TOKENS // 2,
            "config",
        )
        health = Tokens(*HEALTH_TOKENS, "config")
        every = cadence_seconds(self.settings.schedule.health_every) or 900
        health_calls = ticks_in(every, self.session_s)
        return [
            PlanLine(
                function="execution_monitoring",
                every="after_trade",
                tier="fast",
                model=model,
                key=key,
                calls=trades,
                tokens=execution,
                cost_nanos=self.cost(model, execution, trades),
                keys=keys,
            ),
            PlanLine(
                function="health_monitoring",
                every=format_every(every),
                tier="fast",
                model=model,
                key=key,
                calls=health_calls,
                tokens=health,
                keys=keys,
                cost_nanos=self.cost(model, health, health_calls),
            ),
        ]

    def spill(self, lines: list[PlanLine]) -> list[PlanLine]:
        """Spread each line's calls over its keys in order, each key up to its dollar and token caps."""
        usd = {name: usd_to_nanos(key.daily_usd) for name, key in self.settings.keys.items()}
        tokens = {name: key.daily_tokens for name, key in self.settings.keys.items()}
        spread = []
        for line in lines:
            keys = line.keys or (line.key,)
            left, shares = line.calls, []
            for i, key in enumerate(keys):
                fits = max(
                    0, min(usd[key] // max(line.call_nanos, 1), tokens[key] // max(line.call_tokens, 1))
                )
                take = left if i == len(keys) - 1 else min(left, fits)
                shares.append((key, take))
                usd[key] -= take * line.call_nanos
                tokens[key] -= take * line.call_tokens
                left -= take
            spread.append(replace(line, key_calls=tuple(shares)))
        return spread

    def caps(self, lines: list[PlanLine]) -> list[CapCheck]:
        budget = self.settings.budget
        total = sum(line.cost_nanos for line in lines)
        checks = [CapCheck("daily", usd_to_nanos(budget.daily_usd), total)]
        by_tier: dict[str, int] = defaultdict(int)
        by_key: dict[str, int] = defaultdict(int)
        tokens_by_key: dict[str, int] = defaultdict(int)
        for line in lines:
            by_tier[line.tier] += line.cost_nanos
            for key, calls in line.key_calls or ((line.key, line.calls),):
                by_key[key] += line.call_nanos * calls
                tokens_by_key[key] += line.call_tokens * calls
        for name, tier in self.settings.tiers.items():
            checks.append(
                CapCheck(
                    f"tier {name}", usd_to_nanos(budget.daily_usd * tier.budget_share), by_tier.get(name, 0)
                )
            )
        for name, key_cap in self.settings.keys.items():
            checks.append(CapCheck(f"key {name}", usd_to_nanos(key_cap.daily_usd), by_key.get(name, 0)))
            checks.append(
                CapCheck(f"key {name} tokens", key_cap.daily_tokens, tokens_by_key.get(name, 0), "tokens")
            )
        return checks

    def warning(self, plan: Plan, cap: CapCheck) -> str:
        """Name the broken cap, the line that weighs most on it, and the cheapest change that fits."""
        kind, _, rest = cap.cap.partition(" ")
        name = rest.split(" ")[0]
        under = [
            line
            for line in plan.lines
            if kind == "daily"
            or (kind == "tier" and line.tier == name)
            or (kind == "key" and any(k == name and n for k, n in line.key_calls))
        ]
        periodic = [
            line
            for line in under
            if cadence_seconds(line.every) is not None and line.function in self.settings.tasks
        ]
        amount = format_usd if cap.unit == "usd" else (lambda v: f"{v:,} tokens")
        head = f"breaks {cap.cap} ({amount(cap.limit)}/day): {amount(cap.planned)} planned"
        if not periodic:
            return f"the plan {head}; raise the cap or trade less"
        worst = max(periodic, key=lambda line: _weight(line, cap.unit))
        fixes = self.fixes(worst, cap)
        hint = (
            " or ".join(fixes) + " fits"
            if fixes
            else "no cadence or model change of this function alone fits"
        )
        return f"{worst.function} every {worst.every} {head}; {hint}"

    def fixes(self, line: PlanLine, cap: CapCheck) -> list[str]:
        """The slowest-to-reach cadence and the best model of the tier that bring the cap under its limit."""
        every = cadence_seconds(line.every)
        assert every is not None
        found = []
        slower = next(
            (step for step in _STEPS if step > every and self._fits(line.function, cap.cap, every=step)), None
        )
        if slower is not None:
            found.append(f"every {format_every(slower)}")
        if cap.unit == "usd":
            options = sorted(
                (self.task_line(line.function, model=m).cost_nanos, m)
                for m in self.settings.tiers[line.tier].models
                if m != line.model and m in self.catalog
            )
            fitting = [m for _, m in options if self._fits(line.function, cap.cap, model=m)]
            if fitting:
                found.append(f"model {fitting[-1]}")
        return found

    def _fits(self, task: str, cap_name: str, *, every: int | None = None, model: str | None = None) -> bool:
        """Whether the plan keeps `cap_name` with one task at another cadence or on another model first."""
        cfg = self.settings.tasks[task]
        update: dict[str, Any] = {}
        if every is not None:
            update["every"] = format_every(every)
        if model is not None:
            update["models"] = [model, *(m for m in cfg.models if m != model)]
        tasks = {**self.settings.tasks, task: cfg.model_copy(update=update)}
        changed = Planner(self.settings.model_copy(update={"tasks": tasks}), self.catalog, self.measured)
        return not any(c.cap == cap_name and c.broken for c in changed.caps(changed.lines()))


_STEPS = (5, 10, 15, 20, 30, 60, 120, 180, 300, 600, 900, 1200, 1800, 3600, 7200, 14_400, 28_800, 86_400)


def _weight(line: PlanLine, unit: str) -> int:
    return line.cost_nanos if unit == "usd" else line.day_tokens


def build_plan(settings: Settings, catalog: Catalog, ledger: Ledger | None = None) -> Plan:
    """The plan for one trading day, with tokens measured from `ledger` where it has history."""
    measured = measured_tokens(ledger) if ledger is not None else {}
    return Planner(settings, catalog, measured).build()


__all__ = ["CapCheck", "Plan", "PlanLine", "Planner", "Tokens", "build_plan", "measured_tokens"]
