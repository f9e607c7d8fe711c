"""The gateway driven by the client libraries its users call it with, each as its docs show."""

import os
import sys
from pathlib import Path

# The gateway helpers live beside the service tests; make them importable however pytest is run.
_SERVICE_TESTS = str(Path(__file__).resolve().parent.parent / "service")
if _SERVICE_TESTS not in sys.path:
    sys.path.append(_SERVICE_TESTS)

# Set before any client library is imported. LiteLLM otherwise fetches its model-cost map (at
# import) and other catalogues from the internet, where it uses its bundled copies in offline mode
# (its telemetry is off unless turned on); LangChain would trace to LangSmith if a shell enables it.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ["LITELLM_OFFLINE_MODE"] = "true"
os.environ["LANGCHAIN_TRACING_V2"] = "false"
os.environ["LANGSMITH_TRACING"] = "false"
