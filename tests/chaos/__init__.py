"""The chaos suite: real processes (gateways, engines, a simulator, Redis) started and broken."""

import sys
from pathlib import Path

# The gateway helpers live beside the service tests; make them importable however pytest is run.
_SERVICE_TESTS = str(Path(__file__).resolve().parent.parent / "service")
if _SERVICE_TESTS not in sys.path:
    sys.path.append(_SERVICE_TESTS)
