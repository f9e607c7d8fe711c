"""The HTTP gateway: an OpenAI-compatible API in front of a Lyra engine (`lyra serve`)."""

from lyra.service.app import app_from_env, create_app
from lyra.service.errors import ApiError
from lyra.service.options import ServiceOptions

__all__ = ["ApiError", "ServiceOptions", "app_from_env", "create_app"]
