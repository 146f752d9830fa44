"""The client side: build and sign events with your own key, send them to a ledger.

`Signer` makes envelopes (`domain`-free: only the protocol); `LedgerClient` sends them over HTTP or, for the
demo and tests, to an in-process `Ledger`, fetching stream heads and retrying on a conflict.
"""

from ledger.client.signer import Signer
from ledger.client.transport import HttpTransport, LedgerError, LocalTransport, Transport
from ledger.client.verbs import LedgerClient

__all__ = ["HttpTransport", "LedgerClient", "LedgerError", "LocalTransport", "Signer", "Transport"]
