"""Creating a ledger: the operator's root key, the log key, and entry #0 (`ledger_created`)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ledger.client.signer import Signer
from ledger.keys import KeyPair
from ledger.service import Ledger
from ledger.writer import Receipt

DEFAULT_TOLERANCE_PPM = 20_000  # 2 %: scales, moisture and dust on an artisanal site


@dataclass(frozen=True)
class GenesisKeys:
    root: KeyPair
    log: KeyPair


def key_paths(home: Path, operator: str) -> tuple[Path, Path]:
    return home / "keys" / f"{operator}.pem", home / "keys" / "log.pem"


def new_log_origin() -> str:
    """A log origin of its own for a new ledger: `tagledger.local/<16 random hex digits>/log`.

    The origin names the log in its checkpoints and is the name of the log's note key (protocol 11.2). C2SP
    tlog-checkpoint asks that it identify the log uniquely (a schema-less URL, with no space and no `+`): an
    auditor remembers the key and the last checkpoint of each origin, so two ledgers with the same origin (one
    re-initialised in place of another) would look like one log whose key changed. `tagledger init --origin`
    sets another, e.g. the operator's own domain."""
    return f"tagledger.local/{secrets.token_hex(8)}/log"


def create_ledger(
    ledger: Ledger,
    *,
    name: str,
    operator: str,
    operator_name: str,
    country: str,
    log_key_name: str,
    keys: GenesisKeys,
    tolerance_ppm: int = DEFAULT_TOLERANCE_PPM,
    time: datetime | None = None,
) -> Receipt:
    """Record the genesis event, signed by the operator's root key (the only self-signed event)."""
    signer = Signer(operator, keys.root)
    envelope = signer.envelope(
        "ledger_created",
        "ledger",
        None,
        {
            "ledger": name,
            "operator": {"org": operator, "name": operator_name, "country": country},
            "root_key": keys.root.public_key,
            "log_key": {"name": log_key_name, "public_key": keys.log.public_key},
            "mass_tolerance_ppm": tolerance_ppm,
        },
        time=time,
    )
    return ledger.submit(envelope)
