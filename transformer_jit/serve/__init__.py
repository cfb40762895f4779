"""An OpenAI-compatible HTTP server for a GPT (`transformer-jit serve`), on Starlette and Uvicorn
(the `serve` extra, imported only here):

    errors.py      OpenAI-style error bodies
    schema.py      the completion request, checked field by field
    vocabulary.py  the tokenizer as the server uses it
    text.py        a completion's text as its tokens come (UTF-8 and stop strings)
    engine.py      the thread that owns the model: continuous batching over a key/value cache
    reply.py       the response body, whole or as a stream's chunks
    guard.py       the API key and the headers' size limit, before any route
    app.py         the routes, the body's size limit, errors as JSON
    server.py      Uvicorn on a socket, and a clean stop
"""
