"""The body of a completion's response, OpenAI's shape, built from the engine's events: whole, or
as the chunks of a stream."""
import time
import uuid


class Reply:
    """The response to one completion request, built from the engine's events."""

    def __init__(self, request, model_name, prompt_tokens):
        self.request, self.model_name, self.prompt_tokens = request, model_name, prompt_tokens
        self.id, self.created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        self.texts = [""] * request.choices
        self.logprobs = [None if request.logprobs is None else
                         {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
                         for _ in range(request.choices)]
        self.finish = [None] * request.choices
        self.made = 0

    def done(self):
        return None not in self.finish

    def add(self, event):
        """Take a "text" or "end" event; returns the choice it makes for a streamed chunk."""
        if event[0] == "text":
            _, index, text, logprobs = event
            self.texts[index] += text
            if logprobs is not None:
                for key, values in logprobs.items():
                    self.logprobs[index][key] += values
            return {"index": index, "text": text, "logprobs": logprobs, "finish_reason": None}
        _, index, reason, made = event
        self.finish[index] = reason
        self.made += made
        return {"index": index, "text": "", "logprobs": None, "finish_reason": reason}

    def usage(self):
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.made,
                "total_tokens": self.prompt_tokens + self.made}

    def chunk(self, choices, usage=None):
        out = {"id": self.id, "object": "text_completion", "created": self.created, "model": self.model_name,
               "choices": choices}
        if usage is not None:
            out["usage"] = usage
        return out

    def whole(self):
        return self.chunk([{"index": i, "text": t, "logprobs": lp, "finish_reason": f}
                           for i, (t, lp, f) in enumerate(zip(self.texts, self.logprobs, self.finish))], self.usage())
