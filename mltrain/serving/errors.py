"""Errors of the scoring server (standard library only: the server runs outside mltrain's environment)."""

from __future__ import annotations


class ServingError(Exception):
    """The server cannot start: bad config, a model file that fails verification or is not trusted.

    ``hint`` says how to fix it. The command line prints both and exits with code 2.
    """

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class BadRequest(Exception):
    """A request the server refuses: ``status`` (4xx) and a message naming the problem."""

    __slots__ = ("status", "message", "headers")

    def __init__(self, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers
