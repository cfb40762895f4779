"""An OpenAI-compatible HTTP server for a GPT (`transformer-jit serve`), on Starlette and Uvicorn
(the `serve` extra, imported only here):

    errors.py      OpenAI-style error bodies
    schema.py      the completion request, checked field by field
    vocabulary.py  the tokenizer as the server uses it
    text.py        a completion's text as its tokens come (UTF-8 and stop strings)
    engine.py      the thread that owns the model: continuous batching over a key/value cache
    app.py         the routes, the API key and the size limits
    server.py      Uvicorn on a socket, and a clean stop
"""
