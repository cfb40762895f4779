"""The model's tokenizer as the server uses it: a character vocabulary or GPT-2's byte-level BPE,
behind one set of calls."""
from ..data.tokenizers import BPETokenizer, encode_text, end_of_text
from .errors import bad_field


class Vocabulary:
    def __init__(self, tokenizer, block_size):
        self.tokenizer, self.block_size = tokenizer, block_size
        self.bpe = isinstance(tokenizer, BPETokenizer)
        self.end_token = end_of_text(tokenizer)

    def encode(self, text):
        """The token ids of a prompt; a 400 naming `prompt` if the model cannot take it. Special
        tokens' texts are those tokens, as `sample` reads a prompt. An empty prompt starts from
        <|endoftext|>, as GPT-2 starts a document."""
        if text == "":
            if self.end_token is None:
                raise bad_field("prompt", "is empty, and a character vocabulary has no start token to begin from")
            return [self.end_token]
        try:
            ids = encode_text(self.tokenizer, text)
        except ValueError as e:  # characters outside the vocabulary
            raise bad_field("prompt", str(e)) from None
        if len(ids) > self.block_size:
            raise bad_field("prompt", f"{len(ids)} tokens, longer than this model's context of {self.block_size} "
                                      f"tokens: shorten it (the server does not cut prompts)")
        return ids

    def token_bytes(self, token):
        return self.tokenizer.token_bytes(token) if self.bpe else self.tokenizer.chars[token].encode("utf-8")

    def token_text(self, token):
        """One token as text, for log probabilities (a BPE token cut inside a character shows U+FFFD)."""
        return self.token_bytes(token).decode("utf-8", errors="replace")
