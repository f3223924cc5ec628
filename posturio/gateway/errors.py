"""Errors of the /v1 API, in OpenAI's envelope so every OpenAI client understands them."""

from __future__ import annotations

from typing import Any

# HTTP status -> OpenAI's error "type".
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    502: "api_error",
    503: "api_error",
    504: "api_error",
}


class GatewayError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.retry_after = retry_after

    @property
    def type(self) -> str:
        return _TYPES.get(self.status, "api_error")

    def body(self, request_id: str | None) -> dict[str, Any]:
        message = f"{self.message} (request id {request_id})" if request_id else self.message
        return {
            "error": {"message": message, "type": self.type, "param": self.param, "code": self.code}
        }


def invalid(message: str, param: str | None = None, code: str = "invalid_request") -> GatewayError:
    return GatewayError(400, message, code=code, param=param)
