"""Budgets: the governor that reserves every attempt's worst case against each cap, and the forecast.

`governor` admits, settles and refuses; `forecast` projects the day's spend from the ledger.
"""

from lyra._moved import forward


def __getattr__(name: str) -> object:
    """Names that `lyra.budget` held before it became a package (e.g. `from lyra.budget import ...`)."""
    return forward(__name__, "lyra.budget.governor", name)
