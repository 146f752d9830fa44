"""`Signer`: an organisation's identity on the client side, which turns event data into signed envelopes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ledger.keys import KeyPair
from verification.encoding import format_time
from verification.envelope import sign_body


@dataclass(frozen=True)
class Signer:
    org: str
    keys: KeyPair

    def envelope(
        self,
        event_type: str,
        stream: str,
        prev: str | None,
        data: dict[str, Any],
        *,
        time: datetime | str | None = None,
        links: dict[str, str | None] | None = None,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        """A signed envelope (as a JSON object) for an event this organisation records."""
        if time is None:
            time = datetime.now(timezone.utc)
        body: dict[str, Any] = {
            "v": 1,
            "id": event_id or str(uuid.uuid4()),
            "type": event_type,
            "stream": stream,
            "prev": prev,
            "actor": self.org,
            "key": self.keys.kid,
            "time": time if isinstance(time, str) else format_time(time),
            "data": {k: v for k, v in data.items() if v is not None},
        }
        if links:
            body["links"] = links
        envelope = sign_body(self.keys.private_key, body, check=False)
        return {"body": envelope.body, "sig": envelope.sig}
