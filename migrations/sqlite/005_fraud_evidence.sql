-- Fraud flags (docs/_drafts/flags.md): signed envelopes refused because their tag's life was over (rule
-- `tag.finished`, or `tag.already_attached` on a voided tag), kept as evidence of a reused tag. Only envelopes
-- whose signature verified with a registered key of their actor are kept (the writer checks it), each once
-- (`hash`), at most 100 per tag. They never change custody and are not part of the log. Append-only, like the
-- log. (The flags projection's own tables are created by ledger/flags.py, like the custody projection's.)
CREATE TABLE tagledger_rejected_attempts (
    id       INTEGER PRIMARY KEY,
    tag      TEXT    NOT NULL,
    rule     TEXT    NOT NULL,
    received TEXT    NOT NULL,
    log_size INTEGER NOT NULL,
    hash     TEXT    NOT NULL UNIQUE,
    envelope BLOB    NOT NULL
);
CREATE INDEX tagledger_rejected_attempts_tag ON tagledger_rejected_attempts (tag, id);

CREATE TRIGGER tagledger_rejected_attempts_no_update BEFORE UPDATE ON tagledger_rejected_attempts
BEGIN
    SELECT RAISE(ABORT, 'tagledger: the rejected attempts are append-only (UPDATE refused)');
END;
CREATE TRIGGER tagledger_rejected_attempts_no_delete BEFORE DELETE ON tagledger_rejected_attempts
BEGIN
    SELECT RAISE(ABORT, 'tagledger: the rejected attempts are append-only (DELETE refused)');
END;
