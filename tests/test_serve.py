"""transformer-jit serve: OpenAI's API over a tiny model, called with OpenAI's own client and with
raw HTTP where the client would hide what is on the wire (server-sent events, bad bodies,
disconnects, size limits)."""
import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai")

from refusals import assert_refused  # noqa: E402

from transformer_jit.cli import main  # noqa: E402
from transformer_jit.data.tokenizers import BPETokenizer, CharTokenizer  # noqa: E402
from transformer_jit.models import GPT, GPTConfig  # noqa: E402
from transformer_jit.models.generation import Sequences  # noqa: E402
from transformer_jit.serve.server import Server, open_socket  # noqa: E402
from transformer_jit.serve.text import TextStream  # noqa: E402

TEXT = "the quick brown fox jumps over the lazy dog.\n" * 40
BLOCK = 16
CAP = 300  # the servers' --max-tokens
DEADLINE_S = 20   # for the server to start, stop or free a slot
REPLY_S = 300     # for a reply: the first calls compile the kernels they use


def tiny_model(vocab_size, seed=0):
    """Random weights, larger than GPT's initial ones, so that sampling has varied logits."""
    model = GPT(GPTConfig(vocab_size=vocab_size, block_size=BLOCK, n_layer=2, n_head=2, n_embd=16), seed=seed)
    model.params[:] = np.random.default_rng(seed).normal(0, 0.3, model.params.shape)
    return model


@pytest.fixture(scope="module")
def char_model():
    tokenizer = CharTokenizer.from_text(TEXT)
    return tiny_model(tokenizer.vocab_size), tokenizer


def wait_for(condition, what):
    """Wait until condition() holds (polling, up to DEADLINE_S)."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


class Running:
    """A Server on a free loopback port, in a thread, for a `with` block."""

    def __init__(self, model, tokenizer, max_tokens=CAP, slots=16, max_body_bytes=1 << 20, api_key=None):
        self.server = Server(model, tokenizer, "tiny", open_socket("127.0.0.1", 0), max_tokens, slots,
                             max_body_bytes, api_key, log_level="warning")
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        wait_for(lambda: self.server.uvicorn.started or not self.thread.is_alive(), "the server to start")
        assert self.thread.is_alive()
        return self.server

    def __exit__(self, *exc):
        self.server.uvicorn.should_exit = True
        self.thread.join(DEADLINE_S)
        assert not self.thread.is_alive(), "the server did not stop"


@pytest.fixture(scope="module")
def server(char_model):
    with Running(*char_model) as server:
        yield server


def client(server, api_key="unused"):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=api_key, max_retries=0, timeout=REPLY_S)


def request(server, method, path, body=None, raw=None, headers=None):
    """(status, decoded JSON or text) of one raw HTTP request."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=REPLY_S)
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    response = conn.getresponse()
    payload = response.read().decode()
    conn.close()
    try:
        return response.status, json.loads(payload)
    except ValueError:
        return response.status, payload


def events(server, body):
    """The data lines of a streamed completion, read off the socket."""
    status, text = request(server, "POST", "/v1/completions", {**body, "stream": True})
    assert status == 200, text
    lines = [line for line in text.split("\n") if line]
    assert all(line.startswith("data: ") for line in lines), lines
    return [line[len("data: "):] for line in lines]


def generated(model, tokenizer, prompt, max_tokens, seed, temperature=1.0, top_p=None, n=1):
    """What the library's generate makes of the same request: the server must give exactly this."""
    out = model.generate([tokenizer.encode(prompt)] * n, max_tokens, temperature=temperature, top_p=top_p, seed=seed)
    return [tokenizer.decode(row[len(prompt):]) for row in out]


# ---- the pieces -----------------------------------------------------------------------------

def test_a_step_over_the_first_rows_leaves_the_others_and_equals_a_step_over_all(char_model):
    model = char_model[0]
    prompts = [np.array([1, 2, 3]), np.array([4, 5]), np.array([6])]
    tokens = np.array([7, 8, 9])
    with model.evaluating():
        every = Sequences(model, 3, BLOCK)
        every.prefill(prompts)
        expected = every.step(tokens).copy()
        first = Sequences(model, 3, BLOCK)
        first.prefill(prompts)
        got = first.step(tokens[:2])
    assert got.shape == (2, model.config.vocab_size)
    np.testing.assert_array_equal(got, expected[:2])
    np.testing.assert_array_equal(first.cache.lengths, [4, 3, 1])  # the third row waited


def test_text_stream_holds_split_characters_and_possible_stop_strings():
    pieces = {1: "ab".encode(), 2: "é".encode()[:1], 3: "é".encode()[1:] + b"c", 4: b"END", 5: b"x"}
    stream = TextStream(pieces.__getitem__, ("cEN", "zz"))
    assert stream.add(1) == "ab"
    assert stream.add(2) == ""        # half a character waits for the rest
    assert stream.add(3) == "é"       # "c" might begin "cEN"
    assert stream.add(4) == "" and stream.stopped  # the text ends before the stop string
    assert stream.add(5) == "" and stream.finish() == ""
    plain = TextStream(pieces.__getitem__, ("zz",))
    assert "".join([plain.add(t) for t in (1, 2, 3, 5)] + [plain.finish()]) == "abécx"
    cut = TextStream(pieces.__getitem__)
    assert cut.add(2) == "" and cut.finish() == "\ufffd"  # a character that never completes


# ---- the endpoints --------------------------------------------------------------------------

def test_health_and_models(server):
    assert request(server, "GET", "/health") == (200, {"status": "ok"})
    models = client(server).models.list()
    assert [m.id for m in models.data] == ["tiny"]


def test_completion_equals_the_librarys_generation_with_usage(server, char_model):
    model, tokenizer = char_model
    reply = client(server).completions.create(model="tiny", prompt="the quick", max_tokens=40, seed=5,
                                              temperature=0.9, top_p=0.9)
    assert reply.object == "text_completion" and reply.model == "tiny"
    assert [c.text for c in reply.choices] == generated(model, tokenizer, "the quick", 40, 5, 0.9, 0.9)
    assert reply.choices[0].finish_reason == "length"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (9, 40, 49)


def test_prompt_lists_and_n_give_every_completion_in_order(server, char_model):
    model, tokenizer = char_model
    reply = client(server).completions.create(model="tiny", prompt=["the", "a lazy dog"], n=2, max_tokens=30, seed=2)
    texts = [c.text for c in sorted(reply.choices, key=lambda c: c.index)]
    assert len(texts) == 4 and len(set(texts)) == 4
    # choice i draws from the i-th generator spawned from the seed, as generate's row i does
    assert texts[:2] == generated(model, tokenizer, "the", 30, 2, n=4)[:2]
    assert reply.usage.prompt_tokens == 3 + 10 and reply.usage.completion_tokens == 4 * 30


def test_stop_strings_cut_the_text_before_them(server):
    openai_client = client(server)
    whole = openai_client.completions.create(model="tiny", prompt="the", max_tokens=60, temperature=0).choices[0]
    stop = whole.text[20:22]
    cut = openai_client.completions.create(model="tiny", prompt="the", max_tokens=60, temperature=0,
                                           stop=[stop, "\u00a7never"]).choices[0]
    assert cut.text == whole.text[:whole.text.index(stop)] and cut.finish_reason == "stop"


def test_echo_and_logprobs_are_the_models_log_probabilities(server, char_model):
    model, tokenizer = char_model
    reply = client(server).completions.create(model="tiny", prompt="the lazy", max_tokens=5, echo=True,
                                              logprobs=3, temperature=0).choices[0]
    assert reply.text.startswith("the lazy") and len(reply.text) == len("the lazy") + 5
    lp = reply.logprobs
    assert "".join(lp.tokens) == reply.text and lp.text_offset == list(range(len(reply.text)))
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    ids = tokenizer.encode(reply.text)
    with model.evaluating():
        logits, _ = model.forward(ids[None, :-1])
    z = logits[0].astype(np.float64)
    logp = z - z.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(lp.token_logprobs[1:], logp[np.arange(len(ids) - 1), ids[1:]], rtol=1e-4, atol=1e-5)
    for t, top in enumerate(lp.top_logprobs[1:]):
        best = np.argsort(-logp[t])[:3]
        assert list(top) == [tokenizer.decode([i]) for i in best]
        if t + 1 >= len("the lazy"):  # a generated token, greedy: the most likely
            assert lp.tokens[t + 1] == list(top)[0] and top[lp.tokens[t + 1]] == lp.token_logprobs[t + 1]
    scored = client(server).completions.create(model="tiny", prompt="the lazy", max_tokens=0, echo=True, logprobs=0)
    assert scored.choices[0].text == "the lazy" and scored.usage.completion_tokens == 0
    assert scored.choices[0].logprobs.top_logprobs[1:] == [{}] * 7


def test_chat_needs_a_chat_template(server):
    with pytest.raises(openai.BadRequestError, match="no chat template"):
        client(server).chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}])


# ---- streaming ------------------------------------------------------------------------------

def test_stream_sends_events_token_by_token_ending_with_done_and_equal_to_the_whole(server):
    body = {"model": "tiny", "prompt": ["the", "dog"], "n": 2, "max_tokens": 25, "seed": 9, "logprobs": 2,
            "stop": "zy", "stream_options": {"include_usage": True}}
    data = events(server, body)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    *pieces, usage = chunks
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] > 0
    whole = request(server, "POST", "/v1/completions", body={k: v for k, v in body.items() if k != "stream_options"})[1]
    assert usage["usage"] == whole["usage"]
    for choice in whole["choices"]:
        mine = [c["choices"][0] for c in pieces if c["choices"][0]["index"] == choice["index"]]
        assert "".join(c["text"] for c in mine) == choice["text"]
        assert [c["finish_reason"] for c in mine][-1] == choice["finish_reason"]
        tokens = [t for c in mine if c["logprobs"] for t in c["logprobs"]["tokens"]]
        assert tokens == choice["logprobs"]["tokens"]
    assert max(len(c["choices"][0]["text"]) for c in pieces) <= 2  # piece by piece, not all at the end


def test_the_openai_clients_stream_equals_the_whole_completion(server):
    openai_client = client(server)
    whole = openai_client.completions.create(model="tiny", prompt="fox", max_tokens=50, seed=3)
    streamed = openai_client.completions.create(model="tiny", prompt="fox", max_tokens=50, seed=3, stream=True)
    assert "".join(chunk.choices[0].text for chunk in streamed) == whole.choices[0].text


# ---- concurrency ----------------------------------------------------------------------------

def test_requests_that_arrive_together_are_decoded_together_and_give_what_they_give_alone(char_model):
    bodies = [dict(prompt="the quick"[:3 + i], max_tokens=30 + 25 * i, seed=i, temperature=0.5 + 0.1 * i,
                   top_p=1.0 - 0.05 * i) for i in range(6)]
    with Running(*char_model) as server:
        openai_client = client(server)
        alone = [openai_client.completions.create(model="tiny", **b).choices[0].text for b in bodies]
        engine = server.engine
        widths, step = [], engine.sequences.step
        engine.sequences.step = lambda tokens: (widths.append(len(tokens)), step(tokens))[1]
        together = [None] * len(bodies)
        start = threading.Barrier(len(bodies))

        def call(i):
            start.wait()
            together[i] = openai_client.completions.create(model="tiny", **bodies[i]).choices[0].text

        threads = [threading.Thread(target=call, args=(i,)) for i in range(len(bodies))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(REPLY_S)
    assert together == alone
    assert max(widths) >= 3  # one forward stepped several requests' sequences


# ---- bad input ------------------------------------------------------------------------------

OK = {"model": "tiny", "prompt": "the"}
BAD = [
    (dict(OK, max_tokens=-1), "max_tokens", "must be in [0, 300]"),
    (dict(OK, max_tokens=301), "max_tokens", "above the server's limit (--max-tokens 300)"),
    (dict(OK, max_tokens="10"), "max_tokens", "must be an integer"),
    (dict(OK, max_tokens=2.5), "max_tokens", "must be an integer"),
    (dict(OK, temperature=-0.1), "temperature", "must be in [0.0, 2.0]"),
    (dict(OK, temperature=2.5), "temperature", "must be in [0.0, 2.0]"),
    (dict(OK, temperature="hot"), "temperature", "must be a finite number"),
    (dict(OK, top_p=0), "top_p", "must be in (0.0, 1.0]"),
    (dict(OK, top_p=1.5), "top_p", "must be in (0.0, 1.0]"),
    (dict(OK, stop=5), "stop", "a string or a list of strings"),
    (dict(OK, stop=[""]), "stop", "empty string"),
    (dict(OK, stop=list("abcde")), "stop", "at most 4"),
    (dict(OK, seed=-1), "seed", "must be >= 0"),
    (dict(OK, seed="x"), "seed", "must be an integer"),
    (dict(OK, n=0), "n", "must be in [1, 64]"),
    (dict(OK, prompt=["a"] * 33, n=2), "n", "at most 64"),
    (dict(OK, stream="yes"), "stream", "true or false"),
    (dict(OK, echo=1), "echo", "true or false"),
    (dict(OK, logprobs=21), "logprobs", "must be in [0, 20]"),
    (dict(OK, stream_options={"include_usage": True}), "stream_options", "only with stream"),
    (dict(OK, presence_penalty=0.5), "presence_penalty", "not supported"),
    (dict(OK, best_of=3), "best_of", "not supported"),
    (dict(OK, max_token=5), "max_token", "unknown field"),
    ({"model": "tiny"}, "prompt", "required"),
    (dict(OK, prompt=5), "prompt", "a string or a non-empty list of strings"),
    (dict(OK, prompt=[]), "prompt", "a string or a non-empty list of strings"),
    (dict(OK, prompt=["a", 3]), "prompt", "item 1"),
    (dict(OK, prompt="the \u20ac"), "prompt", "\u20ac"),
    (dict(OK, prompt=""), "prompt", "no start token"),
    (dict(OK, prompt="a" * (BLOCK + 1)), "prompt", f"17 tokens, longer than this model's context of {BLOCK}"),
    (dict(OK, model="gpt-4"), "model", "serves 'tiny', not 'gpt-4'"),
    (dict(OK, model=["tiny"]), "model", "must be a string"),
]


@pytest.mark.parametrize("body, field, message", BAD, ids=[f"{field}-{i}" for i, (_, field, _) in enumerate(BAD)])
def test_bad_fields_are_refused_naming_the_field(server, body, field, message):
    status, reply = request(server, "POST", "/v1/completions", body)
    assert status == (404 if "serves" in message else 400), reply
    error = reply["error"]
    assert error["param"] == field and message in error["message"] and error["message"].startswith(field)
    assert request(server, "GET", "/health")[0] == 200  # and the server goes on


@pytest.mark.parametrize("raw, message", [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe{}", "not valid JSON"),
    (b"[" * 100_000, "not valid JSON"),
    (b"[1, 2]", "must be a JSON object, got a list"),
    (b'{"prompt": "the", "temperature": NaN}', "temperature: must be a finite number"),
])
def test_bodies_that_are_not_a_request_are_refused(server, raw, message):
    status, reply = request(server, "POST", "/v1/completions", raw=raw)
    assert status == 400 and message in reply["error"]["message"], reply


def test_unknown_routes_and_methods_get_json_errors(server):
    status, reply = request(server, "GET", "/v1/completions")
    assert status == 405 and "GET /v1/completions" in reply["error"]["message"]
    status, reply = request(server, "GET", "/v1/nothing")
    assert status == 404 and "error" in reply


def test_bodies_and_headers_past_the_limits_are_refused(char_model):
    with Running(*char_model, max_body_bytes=1000) as server:
        big = dict(OK, prompt="the " * 300)
        status, reply = request(server, "POST", "/v1/completions", big)
        assert status == 413 and "at most 1000" in reply["error"]["message"]
        conn = http.client.HTTPConnection(server.host, server.port, timeout=DEADLINE_S)
        conn.request("POST", "/v1/completions", body=iter([json.dumps(big).encode()]), encode_chunked=True,
                     headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        response = conn.getresponse()
        assert response.status == 413 and b"over 1000 bytes" in response.read()
        conn.close()
        status, reply = request(server, "POST", "/v1/completions", OK, headers={"X-Padding": "x" * 9000})
        assert status == 431 and "headers" in reply["error"]["message"]
        status, _ = request(server, "POST", "/v1/completions", OK, headers={"X-Padding": "x" * 70_000})
        assert 400 <= status < 500  # past what the HTTP layer buffers: refused there
        assert request(server, "POST", "/v1/completions", dict(OK, max_tokens=3))[0] == 200


# ---- disconnects, the API key ---------------------------------------------------------------

def open_request(server, body):
    sock = socket.create_connection((server.host, server.port), timeout=REPLY_S)
    data = json.dumps(body).encode()
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
    return sock


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_disconnects_frees_its_slot(char_model, stream):
    with Running(*char_model, max_tokens=10 ** 6, slots=1) as server:
        sock = open_request(server, dict(OK, max_tokens=10 ** 6, stream=stream))
        if stream:
            received = b""
            while b"data: " not in received:
                received += sock.recv(4096)
        wait_for(lambda: server.engine.rows[0] is not None, "the request to take the slot")
        sock.close()
        wait_for(lambda: server.engine.rows[0] is None, "the slot to be freed")
        reply = client(server).completions.create(model="tiny", prompt="the", max_tokens=5)
        assert reply.usage.completion_tokens == 5


def test_an_api_key_is_needed_when_set(char_model):
    with Running(*char_model, api_key="s3cret") as server:
        assert client(server, "s3cret").completions.create(model="tiny", prompt="the", max_tokens=2).choices
        with pytest.raises(openai.AuthenticationError, match="API key"):
            client(server, "wrong").completions.create(model="tiny", prompt="the", max_tokens=2)
        status, reply = request(server, "GET", "/v1/models")
        assert status == 401 and reply["error"]["code"] == "invalid_api_key"
        assert request(server, "GET", "/health")[0] == 200


# ---- a BPE model ----------------------------------------------------------------------------

def test_a_bpe_models_end_token_ends_a_completion():
    tokenizer = BPETokenizer.train(TEXT, 280, progress=False)
    model = tiny_model(tokenizer.vocab_size)
    end = tokenizer.eot_token
    state = model.state_dict()
    # every position's final state points at the end token's embedding, the longest: greedy picks it
    state["transformer.wte.weight"][end] *= 10
    state["transformer.ln_f.weight"][:] = 0
    state["transformer.ln_f.bias"][:] = state["transformer.wte.weight"][end]
    model.load_state_dict(state)
    with Running(model, tokenizer) as server:
        reply = client(server).completions.create(model="tiny", prompt=["", "the<|endoftext|>"], max_tokens=9,
                                                  temperature=0)
    assert [(c.text, c.finish_reason) for c in reply.choices] == [("", "stop"), ("", "stop")]
    assert reply.usage.prompt_tokens == 1 + 2 and reply.usage.completion_tokens == 2


# ---- the command ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    (root / "input.txt").write_text(TEXT)
    assert main(["train", "--data", str(root / "input.txt"), "--out-dir", str(root / "gpt"), "--max-iters", "2",
                 "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "8", "--batch-size", "4",
                 "--eval-interval", "2", "--eval-iters", "1", "--sample-tokens", "0"]) == 0
    return root


@pytest.mark.parametrize("stop, host", [(signal.SIGTERM, "127.0.0.1"), (signal.SIGINT, "0.0.0.0")])
def test_the_command_serves_a_run_and_stops_cleanly_on_a_signal(run_dir, stop, host):
    process = subprocess.Popen([sys.executable, "-m", "transformer_jit", "serve", "--out-dir", str(run_dir / "gpt"),
                                "--port", "0", "--host", host], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=run_dir)
    try:
        line = process.stdout.readline()
        assert line.startswith("serving gpt ") and f"http://{host}:" in line, line + process.stderr.read()
        if host == "0.0.0.0":  # open to the network: said so
            assert "give --api-key to require a key" in process.stdout.readline()
        url = line.split(" on ")[1].split()[0]
        reply = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=REPLY_S).completions.create(
            model="gpt", prompt="the", max_tokens=4)
        assert reply.usage.completion_tokens == 4
        process.send_signal(stop)
        out, err = process.communicate(timeout=REPLY_S)
    finally:
        process.kill()
    assert process.returncode == 0 and out.splitlines()[-1] == "stopped", err
    assert "Traceback" not in err


def test_the_command_says_how_to_install_the_serve_extra(run_dir, capsys, monkeypatch):
    import importlib.util
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "uvicorn" else find_spec(name, *a))
    assert_refused(["serve", "--out-dir", str(run_dir / "gpt")], "serve needs uvicorn: pip install -e '", run_dir,
                   capsys, monkeypatch, status=1)


def test_the_commands_bad_options_are_refused(run_dir, capsys, monkeypatch):
    gpt = str(run_dir / "gpt")
    assert_refused(["serve", "--out-dir", str(run_dir / "nothing")], "run directory not found", run_dir, capsys,
                   monkeypatch)
    assert_refused(["serve", "--out-dir", gpt, "--slots", "33"], "--slots must be in [1, 32]", run_dir, capsys,
                   monkeypatch)
    assert_refused(["serve", "--out-dir", gpt, "--port", "70000"], "invalid port value", run_dir, capsys, monkeypatch)
    assert_refused(["serve", "--out-dir", gpt, "--api-key", ""], "--api-key must not be empty", run_dir, capsys,
                   monkeypatch)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        assert_refused(["serve", "--out-dir", gpt, "--port", port], f"--port {port}: 127.0.0.1:{port} is in use",
                       run_dir, capsys, monkeypatch)


def test_the_server_binds_to_loopback_unless_told(run_dir):
    from transformer_jit.cli import build_parser
    args = build_parser().parse_args(["serve", "--out-dir", str(run_dir / "gpt")])
    assert args.host == "127.0.0.1"


def test_stopping_the_server_ends_a_stream_in_flight_with_an_error_event(char_model):
    running = Running(*char_model, max_tokens=10 ** 6, slots=1)
    with running as server:
        sock = open_request(server, dict(OK, max_tokens=10 ** 6, stream=True))
        received = b""
        while b"data: " not in received:
            received += sock.recv(4096)
        started = time.monotonic()
    assert time.monotonic() - started < 2  # not the grace period
    while True:
        more = sock.recv(65536)
        if not more:
            break
        received += more
    sock.close()
    assert b'"message": "the server is shutting down"' in received


def test_the_command_line_loads_without_the_serve_extra():
    code = ("import sys; from transformer_jit.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('starlette', 'uvicorn', 'transformer_jit.serve') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
