"""Consensus: a panel of models votes; weighted aggregation rules turn the votes into one decision.

`panel` runs the members, `aggregation` holds the rules, `decision` the schema a vote must follow.
"""

from lyra._moved import forward


def __getattr__(name: str) -> object:
    """Names that `lyra.consensus` held before it became a package (e.g. `from lyra.consensus import ...`)."""
    return forward(__name__, "lyra.consensus.panel", name)
