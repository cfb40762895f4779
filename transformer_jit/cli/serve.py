"""transformer-jit serve: a GPT behind an OpenAI-compatible HTTP API (transformer_jit/serve/).

    transformer-jit serve --out-dir out                  a run directory's model
    transformer-jit serve --pretrained gpt2 --port 8080  a Hugging Face GPT-2 directory

The server is a layer beside the command line, not below it, and needs the `serve` extra
(Starlette, Uvicorn): this command loads it by name when it runs, so that every other command
works without that extra.
"""
import importlib
import importlib.util
import ipaddress
import os
from pathlib import Path

from ..models.pretrained import load_pretrained
from ..nn.layers import FEW_ROWS
from ..util.extras import MissingExtra, install_hint
from .common import add_checkpoint_args, load_trained, positive_int

SLOTS = 16  # completions decoded together unless told: each holds a key/value cache of the whole context

API_KEY_VARIABLE = "TRANSFORMER_JIT_API_KEY"


def add_commands(commands, common):
    serve = commands.add_parser("serve", help="serve a GPT over HTTP with OpenAI's API (the serve extra)",
                                parents=[common])
    add_checkpoint_args(serve, "out")
    serve.add_argument("--pretrained", default=None, help="serve pretrained weights instead of a run: a Hugging "
                       "Face GPT-2 directory or an llm.c file, with its tokenizer beside it")
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on; 0.0.0.0 opens it to "
                       "the network (default: 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=port_number, default=8000, help="0: any free port (default: 8000)")
    serve.add_argument("--model-name", default=None, help="the model's name in the API (default: the name of "
                       "the directory or file served)")
    serve.add_argument("--api-key", default=os.environ.get(API_KEY_VARIABLE) or None,
                       help=f"require `Authorization: Bearer KEY` on every /v1 request (default: the environment "
                            f"variable {API_KEY_VARIABLE}, which, unlike an argument, other users cannot see in ps)")
    serve.add_argument("--max-tokens", type=positive_int, default=1024,
                       help="the largest max_tokens a request may ask for (default: 1024)")
    serve.add_argument("--slots", type=positive_int, default=SLOTS,
                       help=f"completions decoded together; more wait for a free slot (default {SLOTS}, most {FEW_ROWS})")
    serve.add_argument("--max-body-bytes", type=positive_int, default=1 << 20,
                       help="the largest request body (default: 1048576)")
    serve.set_defaults(run=serve_model)


def port_number(text):
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError(f"must be in [0, 65535], got {value}")
    return value


port_number.__name__ = "port"  # argparse's message: "invalid port value"


def serve_model(args):
    missing = [name for name in ("starlette", "uvicorn") if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtra(f"serve needs {' and '.join(missing)}: {install_hint('serve')}")
    if not 1 <= args.slots <= FEW_ROWS:
        raise ValueError(f"--slots must be in [1, {FEW_ROWS}], got {args.slots}")
    if args.api_key == "":
        raise ValueError("--api-key must not be empty")
    if args.pretrained:
        model, tokenizer = load_pretrained(args.pretrained)
        where = Path(args.pretrained)
    else:
        model, tokenizer = load_trained(args, "gpt")
        where = Path(args.out_dir)
    server_module = importlib.import_module("transformer_jit.serve.server")
    sock = server_module.open_socket(args.host, args.port)
    name = args.model_name or where.resolve().name
    server = server_module.Server(model, tokenizer, name, sock, args.max_tokens, args.slots, args.max_body_bytes,
                                  args.api_key)
    print(f"serving {name} ({model.num_params():,} parameters, context {model.config.block_size} tokens) on "
          f"{server.url}/v1 with {args.slots} slots; Ctrl-C stops", flush=True)
    if args.api_key is None and not ipaddress.ip_address(server.host).is_loopback:
        print(f"anyone who can reach {server.host} can use it: give --api-key to require a key", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    print("stopped", flush=True)
    return 0
