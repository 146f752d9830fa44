"""Reference verifier for the tagledger protocol (docs/protocol.md).

This package is the format layer an auditor runs on its own: it depends on nothing but the Python
standard library and the ``cryptography`` package, and nothing in it imports the rest of tagledger.

Modules, in the order of the specification:

- :mod:`verification.canonical` -- canonical JSON, RFC 8785 on the protocol's subset (section 1);
- :mod:`verification.encoding` -- hashes, keys, signatures, times and identifiers (section 2);
- :mod:`verification.envelope` -- streams and the signed event envelope (sections 3 and 4);
- :mod:`verification.entry` -- log entries (section 5).

Import the submodules directly; this package re-exports nothing.
"""

PROTOCOL_VERSION = 1
"""The protocol version these modules implement (event body ``v`` and log entry ``v``)."""
