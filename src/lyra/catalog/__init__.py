"""The model catalogue: prices and limits per model (`models`) and what a call can cost (`estimate`)."""

from lyra._moved import forward


def __getattr__(name: str) -> object:
    """Names that `lyra.catalog` held before it became a package (e.g. `from lyra.catalog import ...`)."""
    return forward(__name__, "lyra.catalog.models", name)
