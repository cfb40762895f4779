"""The server under load: aggregate tokens/s and the time to the first token with 1, 4 and 16
clients streaming completions at once (the serve extra).

    python scripts/bench_serve.py                          # a small character GPT
    python scripts/bench_serve.py --pretrained gpt2        # and a Hugging Face GPT-2 directory

The server runs in its own process (`transformer_jit.serve`, as `transformer-jit serve` runs it),
the clients are threads of this one, each streaming `--requests` completions of `--tokens` tokens
one after another (temperature 1, a seed per request, no stop) over plain HTTP. The small model
is a GPT of `train`'s default shape (4 layers, 4 heads, 128 channels, context 256) with random
weights over the 65 characters of tinyshakespeare: its speed does not depend on what it learnt.
A warm-up request compiles the kernels first.

    tokens/s       completion tokens of every client / the wall time from the first request sent
                   to the last token received
    first token    median over requests of the time from sending a request to its first text
"""
import argparse
import http.client
import json
import multiprocessing
import os
import platform
import statistics
import threading
import time

CLIENTS = (1, 4, 16)
SHAKESPEARE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data",
                           "tinyshakespeare.txt")
PROMPT = "ROMEO:\nWhat light through yonder window breaks?\n"


def stop(signum, frame):
    raise KeyboardInterrupt  # SIGTERM stops the server as Ctrl-C does


def serve(pretrained, ready):
    """The server's process: the model, a free loopback port (sent back through `ready`), serving
    until SIGTERM."""
    import signal

    from transformer_jit.data.tokenizers import CharTokenizer
    from transformer_jit.models import GPT, GPTConfig
    from transformer_jit.models.pretrained import load_pretrained
    from transformer_jit.serve.server import Server, open_socket

    signal.signal(signal.SIGTERM, stop)
    if pretrained:
        model, tokenizer = load_pretrained(pretrained)
    else:
        with open(SHAKESPEARE, encoding="utf-8") as f:
            tokenizer = CharTokenizer.from_text(f.read())
        model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=256, n_layer=4, n_head=4, n_embd=128),
                    seed=0)
    server = Server(model, tokenizer, "bench", open_socket("127.0.0.1", 0), 4096, 16, 1 << 20, log_level="warning")
    ready.put(server.port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


def stream(port, tokens, seed):
    """One streamed completion: (seconds to the first text, completion tokens, seconds in all)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    body = {"prompt": PROMPT, "max_tokens": tokens, "seed": seed, "stream": True,
            "stream_options": {"include_usage": True}}
    start = time.perf_counter()
    conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200, response.read()
    first, made = None, 0
    for line in response:
        if not line.startswith(b"data: ") or line.strip() == b"data: [DONE]":
            continue
        chunk = json.loads(line[len(b"data: "):])
        if first is None and chunk["choices"] and chunk["choices"][0]["text"]:
            first = time.perf_counter() - start
        if chunk.get("usage"):
            made = chunk["usage"]["completion_tokens"]
    conn.close()
    return first, made, time.perf_counter() - start


def load(port, clients, requests, tokens):
    """(aggregate tokens/s, median seconds to the first token) of `clients` threads at once."""
    results = []
    lock = threading.Lock()

    def client(c):
        for r in range(requests):
            result = stream(port, tokens, seed=1000 * c + r)
            with lock:
                results.append(result)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return sum(r[1] for r in results) / wall, statistics.median(r[0] for r in results)


def bench(name, pretrained, args):
    context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    server = context.Process(target=serve, args=(pretrained, ready))
    server.start()
    try:
        port = ready.get(timeout=600)
        stream(port, 8, seed=0)  # compiles the kernels
        print(f"\n{name}: {args.requests} streamed completions of {args.tokens} tokens per client")
        print(f"{'clients':>8} {'tokens/s':>10} {'first token':>12}")
        for clients in CLIENTS:
            rate, first = load(port, clients, args.requests, args.tokens)
            print(f"{clients:>8} {rate:>10.1f} {1000 * first:>9.0f} ms", flush=True)
    finally:
        server.terminate()
        server.join(60)


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrained", default=None, help="also a Hugging Face GPT-2 directory")
    parser.add_argument("--tokens", type=int, default=128, help="completion tokens per request (default: 128)")
    parser.add_argument("--requests", type=int, default=2, help="requests per client (default: 2)")
    args = parser.parse_args()
    print(f"{cpu_name()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} before")
    bench("character GPT, 4 layers x 128, context 256 (random weights)", None, args)
    if args.pretrained:
        bench(f"GPT-2 from {args.pretrained}", args.pretrained, args)
    print(f"\nload average {os.getloadavg()[0]:.1f} after")


if __name__ == "__main__":
    main()
