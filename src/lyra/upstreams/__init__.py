"""More than one OpenAI-compatible upstream: OpenRouter (the default) and each `[upstreams.NAME]`.

A model id `NAME:model-id` is served by upstream NAME: sent as `model-id`, with a plain
chat-completions body, the upstream's own keys and no OpenRouter attribution headers, and costed
from its usage at the configured prices (such an upstream reports no `usage.cost`, and has no
/generation to reconcile against).
"""

from lyra.upstreams.body import openai_body
from lyra.upstreams.listing import listed_models
from lyra.upstreams.pool import Upstream, Upstreams
from lyra.upstreams.transport import UpstreamTransport

__all__ = ["Upstream", "UpstreamTransport", "Upstreams", "listed_models", "openai_body"]
