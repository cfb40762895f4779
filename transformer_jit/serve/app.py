"""The HTTP API, OpenAI's shape, as a Starlette application over the engine:

    GET  /health                  {"status": "ok"}, without the API key (for load balancers)
    GET  /v1/models               the one model served
    POST /v1/completions          text completions (schema.py), streamed as server-sent events or whole
    POST /v1/chat/completions     a 400: no model this project serves has a chat template

Every refusal is an OpenAI-style JSON error with a 4xx status naming the field; the request
head and body have size limits; with an API key every /v1 route needs `Authorization: Bearer KEY`.
"""
import asyncio
import json
import time

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from .errors import APIError
from .guard import Guard
from .reply import Reply
from .schema import parse_completion


def build_app(engine, model_name, max_tokens, max_body_bytes=1 << 20, api_key=None):
    """The ASGI application serving `engine`'s model as `model_name`; max_tokens: the cap on a
    request's max_tokens."""
    created = int(time.time())

    async def health(request):
        return JSONResponse({"status": "ok"})

    async def models(request):
        return JSONResponse({"object": "list", "data": [
            {"id": model_name, "object": "model", "created": created, "owned_by": "transformer-jit"}]})

    async def chat(request):
        raise APIError(400, f"{model_name} has no chat template, so it cannot take chat messages: use "
                            f"/v1/completions with a prompt", code="no_chat_template")

    async def completions(request):
        body = await _read_json(request, max_body_bytes)
        completion = parse_completion(body, model_name, max_tokens)
        loop = asyncio.get_running_loop()
        events = asyncio.Queue()
        job = engine.submit(completion, lambda event: loop.call_soon_threadsafe(events.put_nowait, event))
        streaming = False  # once the stream has the job, it cancels the job when it ends
        try:
            first = await events.get()
            if first[0] == "error":
                raise first[1]
            reply = Reply(completion, model_name, sum(first[1]))
            if completion.stream:
                streaming = True
                # the stream cancels its job as it ends; the background task also when the client
                # left before the stream began (a generator never started runs no `finally`)
                return StreamingResponse(_stream(reply, events, engine, job), media_type="text/event-stream",
                                         headers={"Cache-Control": "no-cache"},
                                         background=BackgroundTask(engine.cancel, job))
            watcher = asyncio.create_task(_watch_disconnect(request, events))
            try:
                while not reply.done():
                    event = await events.get()
                    if event[0] == "gone":
                        return JSONResponse({}, status_code=499)  # nobody reads it
                    if event[0] == "error":
                        raise event[1]
                    reply.add(event)
            finally:
                watcher.cancel()
            return JSONResponse(reply.whole())
        finally:
            if not streaming:
                engine.cancel(job)  # its sequences free their rows, if it has not finished

    routes = [Route("/health", health), Route("/v1/models", models),
              Route("/v1/completions", completions, methods=["POST"]),
              Route("/v1/chat/completions", chat, methods=["POST"])]
    handlers = {APIError: _api_error, HTTPException: _http_error, Exception: _unexpected}
    app = Starlette(routes=routes, exception_handlers=handlers)
    return Guard(app, api_key)


async def _stream(reply, events, engine, job):
    """Server-sent events: a chunk per piece of text, one per choice that ends, the usage if asked,
    then `data: [DONE]`. A client that goes away ends this generator, which frees its rows."""
    try:
        while not reply.done():
            event = await events.get()
            if event[0] == "error":
                yield _sse(event[1].body())
                return
            yield _sse(reply.chunk([reply.add(event)]))
        if reply.request.include_usage:
            yield _sse(reply.chunk([], reply.usage()))
        yield "data: [DONE]\n\n"
    finally:
        engine.cancel(job)


def _sse(data):
    return f"data: {json.dumps(data)}\n\n"


async def _watch_disconnect(request, events):
    """Put ("gone",) into `events` when the client disconnects (a request whose body has been
    read receives nothing else)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    events.put_nowait(("gone",))


async def _read_json(request, limit):
    """The request's body as JSON: 413 past `limit` bytes, 400 if it is not JSON."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:  # the HTTP layer checked its form
        raise APIError(413, f"the request body is {length} bytes; this server takes at most {limit} "
                            f"(--max-body-bytes)")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise APIError(413, f"the request body is over {limit} bytes, this server's limit (--max-body-bytes)")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise APIError(400, f"the request body is not valid JSON: {e}") from None


def _response(error):
    return JSONResponse(error.body(), status_code=error.status)


async def _api_error(request, error):
    return _response(error)


async def _http_error(request, error):
    """Starlette's own refusals (no such route, wrong method) in OpenAI's shape."""
    return _response(APIError(error.status_code, f"{request.method} {request.url.path}: {error.detail}"))


async def _unexpected(request, error):
    return _response(APIError(500, f"unexpected {type(error).__name__}: {error}"))
