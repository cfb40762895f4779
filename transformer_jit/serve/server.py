"""Serving a model over HTTP: the engine, the application, and Uvicorn on a socket bound here (so
that a port in use is a clear error and port 0 reports the port it got).

Uvicorn stops on Ctrl-C or SIGTERM. As it begins to, the engine ends the requests in flight (a
503, or an error event in a stream) and its thread stops; Uvicorn then closes the connections
(giving them up to GRACE_S seconds) and returns.
"""
import asyncio
import errno
import socket

import uvicorn

from .app import build_app
from .engine import Engine

GRACE_S = 3


def open_socket(host, port):
    """A listening TCP socket on host:port; ValueError naming the option if it cannot be had."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family, backlog=128)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise ValueError(f"--port {port}: {host}:{port} is in use by another program: give another port") from None
        raise ValueError(f"--host {host} --port {port}: cannot listen there ({e.strerror or e})") from None
    return sock


class Server:
    """A model served on a socket. `serve_forever()` blocks until stopped; `server.uvicorn` can be
    stopped from another thread with `should_exit = True` (as the tests do)."""

    def __init__(self, model, tokenizer, model_name, sock, max_tokens, slots, max_body_bytes, api_key=None,
                 log_level="info"):
        self.engine = Engine(model, tokenizer, slots)
        self.sock = sock
        self.host, self.port = sock.getsockname()[:2]
        app = build_app(self.engine, model_name, max_tokens, max_body_bytes, api_key)
        config = uvicorn.Config(app, http="h11", lifespan="off", log_level=log_level,
                                timeout_graceful_shutdown=GRACE_S)
        self.uvicorn = _Uvicorn(config, self.engine)

    @property
    def url(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def serve_forever(self):
        try:
            self.uvicorn.run(sockets=[self.sock])
        finally:
            self.engine.close()
            self.sock.close()


class _Uvicorn(uvicorn.Server):
    """Uvicorn, closing the engine first when it shuts down, so that no request waits out the grace
    period and then dies cancelled."""

    def __init__(self, config, engine):
        super().__init__(config)
        self.engine = engine

    async def shutdown(self, sockets=None):
        await asyncio.get_running_loop().run_in_executor(None, self.engine.close)
        await super().shutdown(sockets)
