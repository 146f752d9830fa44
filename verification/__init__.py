"""Reference verifier for the tagledger protocol (docs/protocol.md).

This package is the format layer an auditor runs on its own: it depends on nothing but the Python
standard library and the ``cryptography`` package, and nothing in it imports the rest of tagledger.

Modules, in the order of the specification:

- :mod:`verification.canonical` -- canonical JSON, RFC 8785 on the protocol's subset (section 1);
- :mod:`verification.encoding` -- hashes, keys, signatures, times and identifiers (section 2);
- :mod:`verification.envelope` -- streams and the signed event envelope (sections 3 and 4);
- :mod:`verification.entry` -- log entries (section 5);
- :mod:`verification.event_data`, :mod:`verification.registry_replay`, :mod:`verification.custody_rules`,
  :mod:`verification.custody_state` -- event payloads, the key registry as of each entry, the rules and the
  custody state record and digest (sections 6, 7 and 10);
- :mod:`verification.risk_replay` -- incidents, corrective actions and site monitoring in a replay
  (sections 6, 7 and 16); :mod:`verification.sealed_details` -- checking sealed incident details against
  their signed commitment (section 16.2);
- :mod:`verification.entry_checks`, :mod:`verification.event_ids`, :mod:`verification.replay`,
  :mod:`verification.replay_errors`, :mod:`verification.parallel` -- replaying a log, on every core;
- :mod:`verification.tag_store`, :mod:`verification.spill_db` -- the replay's custody states in a bounded
  cache over a temporary SQLite file, so that its memory does not grow with the log (the event ids of
  :mod:`verification.event_ids` spill there too);
- :mod:`verification.merkle`, :mod:`verification.note`, :mod:`verification.checkpoint` -- the RFC 9162
  Merkle tree and proofs, C2SP signed notes and tlog-checkpoints (section 11);
- :mod:`verification.label` -- signed QR labels, checked offline (section 13);
- :mod:`verification.sources`, :mod:`verification.audit` -- reading a ledger over HTTP or from a bundle
  (section 12), and the auditor's command, ``python -m verification.audit``.

Import the submodules directly; this package re-exports nothing.
"""

PROTOCOL_VERSION = 1
"""The protocol version these modules implement (event body ``v`` and log entry ``v``)."""
