"""A completion's text as its tokens come, for streaming: each piece handed out is final, and the
pieces joined equal the text of all the tokens at once, so that a streamed completion is the
non-streamed one cut into pieces.

Two things make a piece wait. A byte-level BPE token may end inside a UTF-8 character: its bytes
wait for the rest of the character (an incremental UTF-8 decoder, with U+FFFD for what never
completes, as the tokenizer's decode). And text that might be the start of a stop string waits until
the next tokens show whether it is: the completion ends before the first stop string, which is
never handed out.
"""
import codecs


class TextStream:
    def __init__(self, token_bytes, stops=()):
        """token_bytes(token id) -> the bytes of that token; stops: the stop strings."""
        self.token_bytes, self.stops = token_bytes, stops
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.held = ""        # decoded text not handed out yet
        self.stopped = False  # a stop string was found: the text has ended

    def add(self, token):
        """The text that token `token` makes final ("" if it waits)."""
        return self._release(self.decoder.decode(self.token_bytes(token)))

    def finish(self):
        """The text still waiting when the completion ends without a stop string."""
        text = self._release(self.decoder.decode(b"", final=True))
        if self.stopped:
            return text
        text, self.held = text + self.held, ""
        return text

    def _release(self, text):
        if self.stopped:
            return ""
        self.held += text
        found = [i for i in (self.held.find(s) for s in self.stops) if i >= 0]
        if found:
            self.stopped = True
            out, self.held = self.held[:min(found)], ""
            return out
        wait = max((n for s in self.stops for n in range(min(len(s) - 1, len(self.held)), 0, -1)
                    if self.held.endswith(s[:n])), default=0)
        out, self.held = self.held[:len(self.held) - wait], self.held[len(self.held) - wait:]
        return out
