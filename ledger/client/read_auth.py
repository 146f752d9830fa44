"""Signed reads (docs/protocol.md section 16.4), the client side: an organisation proves who it is to read what
only authorised readers see (an incident's sealed details), by signing the request with its own key.

    Authorization: Tagledger-Signature org="<org id>", key="<kid>", time="<time>", sig="<base64url>"
    sig = Ed25519 over jcs({"purpose": "tagledger/read/v1", "method": "GET", "path": <path and query, as sent>,
                            "time": <time>})

The ledger checks it with `api.read_auth`; `read_message` is the one definition of the signed bytes.
"""

from __future__ import annotations

from datetime import datetime, timezone

from ledger.keys import KeyPair
from verification.canonical import jcs
from verification.encoding import b64url_encode, format_time

SCHEME = "Tagledger-Signature"
PURPOSE = "tagledger/read/v1"
MAX_SKEW_SECONDS = 300
"""A signed read's `time` may be at most this far from the ledger's clock, either way."""

__all__ = ["MAX_SKEW_SECONDS", "PURPOSE", "SCHEME", "read_authorization", "read_message", "signed_read_headers"]


def read_message(method: str, path: str, time: str) -> bytes:
    """The bytes a reader signs: `path` is the request's path and query exactly as sent (`/v1/x?as_of=5`)."""
    return jcs({"purpose": PURPOSE, "method": method, "path": path, "time": time})


def read_authorization(org: str, keys: KeyPair, path: str, *, method: str = "GET",
                       time: datetime | str | None = None) -> str:
    """The `Authorization` header value for reading `path` (path and query, as it will be sent) as `org`,
    signed with `keys` (one of `org`'s registered keys, valid now), dated `time` (default: now)."""
    when = time if isinstance(time, str) else format_time(time or datetime.now(timezone.utc))
    sig = b64url_encode(keys.private_key.sign(read_message(method, path, when)))
    return f'{SCHEME} org="{org}", key="{keys.kid}", time="{when}", sig="{sig}"'


def signed_read_headers(org: str, keys: KeyPair, path: str, **kwargs: object) -> dict[str, str]:
    """`{"Authorization": read_authorization(...)}`, ready for an HTTP client's `headers=`."""
    return {"Authorization": read_authorization(org, keys, path, **kwargs)}  # type: ignore[arg-type]
