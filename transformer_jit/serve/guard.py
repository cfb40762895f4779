"""What every request passes before its route: the size of its header lines and, with an API key,
the key."""
import hmac

from starlette.responses import JSONResponse

from .errors import APIError

MAX_HEADER_BYTES = 8 << 10  # the request's header lines together


class Guard:
    """ASGI middleware: before a request reaches its route, the size of its header lines and, with
    an API key, the key (compared in constant time, so the time taken tells nothing of it)."""

    def __init__(self, app, api_key):
        self.app = app
        self.key = None if api_key is None else f"Bearer {api_key}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            refusal = self._refusal(scope)
            if refusal is not None:
                return await JSONResponse(refusal.body(), status_code=refusal.status)(scope, receive, send)
        await self.app(scope, receive, send)

    def _refusal(self, scope):
        headers = scope["headers"]
        size = sum(len(name) + len(value) + 4 for name, value in headers)
        if size > MAX_HEADER_BYTES:
            return APIError(431, f"the request's headers are {size} bytes; this server takes at most "
                                 f"{MAX_HEADER_BYTES}")
        if self.key is not None and scope["path"] != "/health":
            given = next((value for name, value in headers if name == b"authorization"), b"")
            if not hmac.compare_digest(given, self.key):
                return APIError(401, "a valid API key is needed: send the header 'Authorization: Bearer KEY'",
                                code="invalid_api_key")
        return None
