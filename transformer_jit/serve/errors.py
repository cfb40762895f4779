"""The errors a client gets, in the shape of OpenAI's API, so that its client raises the matching
exception (BadRequestError, AuthenticationError, NotFoundError, ...) with the message:

    {"error": {"message": "...", "type": "invalid_request_error", "param": "max_tokens", "code": null}}
"""


class APIError(Exception):
    """A request refused: the HTTP status, a message for the user, and the field it names."""

    def __init__(self, status, message, param=None, code=None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self):
        kind = {401: "authentication_error", 404: "not_found_error", 413: "invalid_request_error",
                500: "server_error", 503: "server_error"}.get(self.status, "invalid_request_error")
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


def bad_field(param, message):
    """A 400 naming the request's field `param`: "max_tokens: must be ..."."""
    return APIError(400, f"{param}: {message}", param=param)
