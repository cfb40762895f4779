"""The body of POST /v1/completions, checked field by field: every value of the wrong type or out
of range is a 400 that names its field, before anything reaches the model.

Fields as OpenAI's API has them (and defaults as it gives them):
    model        the served model's name (or left out)
    prompt       a string or a non-empty list of strings
    max_tokens   new tokens per completion, 0 .. the server's --max-tokens (default 16)
    temperature  0 .. 2 (default 1; 0 is greedy)
    top_p        (0, 1] (default 1)
    stop         a string or up to 4 strings: the text ends before the first of them
    seed         an integer >= 0: the same request gives the same tokens, alone or beside others
    n            completions per prompt (default 1)
    stream       server-sent events, token by token
    stream_options  {"include_usage": true}: a last chunk with the usage counts
    echo         the prompt's text before the completion
    logprobs     0 .. MAX_LOGPROBS: each token's log probability and the top-N at its position
    user         accepted and not used
OpenAI's other sampling fields are accepted at their neutral values only (penalties 0, best_of
equal to n, no logit_bias, no suffix); any other field is refused, so that a misspelt one is not
silently ignored.
"""
import math
from dataclasses import dataclass

from .errors import APIError, bad_field

MAX_STOP = 4        # stop strings, as OpenAI's API allows
MAX_LOGPROBS = 20   # top log probabilities per token
MAX_CHOICES = 64    # prompts x n in one request
NEUTRAL = {"presence_penalty": 0, "frequency_penalty": 0, "logit_bias": {}, "suffix": None}


@dataclass
class CompletionRequest:
    prompts: list
    max_tokens: int
    temperature: float
    top_p: float
    stop: tuple
    seed: int       # None: a fresh one
    n: int
    stream: bool
    include_usage: bool
    echo: bool
    logprobs: int   # None: no log probabilities

    @property
    def choices(self):
        """Completions in the response: for each prompt, n of them (OpenAI's order)."""
        return len(self.prompts) * self.n


def parse_completion(body, model_name, max_tokens_cap):
    """CompletionRequest of the decoded JSON `body`, or APIError naming the first bad field."""
    if not isinstance(body, dict):
        raise APIError(400, f"the request body must be a JSON object, got {_json_type(body)}")
    known = set(CompletionRequest.__dataclass_fields__) - {"prompts", "include_usage"}
    unknown = sorted(set(body) - known - set(NEUTRAL) - {"model", "prompt", "user", "best_of", "stream_options"})
    if unknown:
        takes = ", ".join(sorted(known | {"model", "prompt"}))
        raise bad_field(unknown[0], f"unknown field: this server takes {takes}")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise bad_field("model", f"must be a string, got {_json_type(model)}")
    if model is not None and model != model_name:
        raise APIError(404, f"model: this server serves {model_name!r}, not {model!r}", param="model",
                       code="model_not_found")
    for name, neutral in NEUTRAL.items():
        if body.get(name, neutral) not in (neutral, None):
            raise bad_field(name, f"not supported by this server (leave it out, or give {neutral!r})")
    n = _integer(body, "n", 1, 1, MAX_CHOICES)
    if body.get("best_of") not in (None, n):
        raise bad_field("best_of", f"not supported by this server (leave it out, or give n, {n})")
    stream = _boolean(body, "stream")
    request = CompletionRequest(
        prompts=_prompts(body), n=n, stream=stream,
        max_tokens=_integer(body, "max_tokens", 16, 0, max_tokens_cap,
                            f"the server's limit (--max-tokens {max_tokens_cap})"),
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0, low_open=True),
        stop=_stop(body.get("stop")),
        seed=_integer(body, "seed", None, 0, None),
        echo=_boolean(body, "echo"),
        logprobs=_integer(body, "logprobs", None, 0, MAX_LOGPROBS),
        include_usage=_stream_options(body.get("stream_options"), stream))
    if request.choices > MAX_CHOICES:
        raise bad_field("n", f"{len(request.prompts)} prompts x n {request.n} = {request.choices} completions; at "
                             f"most {MAX_CHOICES} in one request")
    return request


def _prompts(body):
    if "prompt" not in body:
        raise bad_field("prompt", "required: a string or a list of strings")
    prompt = body["prompt"]
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return prompt
    if isinstance(prompt, list) and prompt:
        at = next(i for i, p in enumerate(prompt) if not isinstance(p, str))
        raise bad_field("prompt", f"item {at} is {_json_type(prompt[at])}: give strings (token ids are not taken)")
    raise bad_field("prompt", f"must be a string or a non-empty list of strings, got {_json_type(prompt)}")


def _integer(body, name, default, low, high, high_is=""):
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_field(name, f"must be an integer, got {_json_type(value)}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        beyond = f"; above {high_is}" if high_is and value > high else ""
        raise bad_field(name, f"must be {bound}, got {value}{beyond}")
    return value


def _number(body, name, default, low, high, low_open=False):
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise bad_field(name, f"must be a finite number, got {_json_type(value)}")
    if value > high or value < low or (low_open and value == low):
        raise bad_field(name, f"must be in {'(' if low_open else '['}{low}, {high}], got {value}")
    return float(value)


def _boolean(body, name):
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise bad_field(name, f"must be true or false, got {_json_type(value)}")
    return value


def _stop(stop):
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise bad_field("stop", f"must be a string or a list of strings, got {_json_type(stop)}")
    if len(stops) > MAX_STOP:
        raise bad_field("stop", f"at most {MAX_STOP} strings, got {len(stops)}")
    if any(s == "" for s in stops):
        raise bad_field("stop", "an empty string would stop before any text")
    return tuple(stops)


def _stream_options(options, stream):
    if options is None:
        return False
    if not stream:
        raise bad_field("stream_options", "only with stream: true")
    if not isinstance(options, dict) or set(options) - {"include_usage"}:
        raise bad_field("stream_options", 'must be {"include_usage": true or false}')
    return _boolean(options, "include_usage")


def _json_type(value):
    """What a JSON value is, for a message: 'a string "abc"', 'null', 'a list'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:40] + "..."
        return f"the string {shown!r}"
    return "a list" if isinstance(value, list) else "an object"
