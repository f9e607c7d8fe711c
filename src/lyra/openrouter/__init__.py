"""OpenRouter's wire format and HTTP transport; knows nothing of keys, budgets or tiers."""

from lyra.openrouter.transport import OpenRouterTransport
from lyra.openrouter.wire import ChatRequest, ChatResult, StreamDelta, Usage

__all__ = ["ChatRequest", "ChatResult", "OpenRouterTransport", "StreamDelta", "Usage"]
