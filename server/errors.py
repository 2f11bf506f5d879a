"""The domain's errors: one base class; failures.py says how each is answered (status code, no-bid reason,
metric outcome), for every RPC."""

from __future__ import annotations


class PersonabidError(Exception):
    """Base of every error personabid raises on purpose."""


class InvalidRequest(PersonabidError):
    """A request that breaks the API's rules. Names the field and the offending value."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{field}={_show(value)}: {reason}")


class NotReady(PersonabidError):
    """The server has no index or model loaded yet."""


class ShuttingDown(PersonabidError):
    """The server is stopping and takes no new auctions: the caller sends them elsewhere."""


class ArtifactError(PersonabidError):
    """An index or model artifact that is missing, corrupt or inconsistent."""


class ConfigError(PersonabidError):
    """A configuration value that cannot be used."""


def _show(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
