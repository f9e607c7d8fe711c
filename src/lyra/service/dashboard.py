"""GET /dashboard: the live dashboard's page, and /static: its scripts, style and Chart.js.

The page holds no data, so it is served without a token; its script asks for the client token
(pasted once, or passed in the URL's #token= fragment, which browsers never send to the server
or write to a log), keeps it in the tab's sessionStorage and sends it as a bearer token to
GET /v1/report every few seconds. A strict Content-Security-Policy allows scripts and
connections to this origin only.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' "
                               "data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


async def dashboard(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "dashboard.html", media_type="text/html", headers=SECURITY_HEADERS)


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC_DIR)
