"""Pure custody rules for tagledger: no I/O, no storage, no clock.

- `roles`     — organisation roles and who may record what
- `payloads`  — the `data` schema of each event type
- `registry`  — organisations and their keys, as of a point in the log
- `custody`   — the state of one tag, folded from its events
- `rules`     — the admission rules a new event must satisfy
- `errors`    — `RuleViolation`, which names the rule and the offending field
"""
