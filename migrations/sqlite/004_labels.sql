-- Signed QR labels (docs/protocol.md section 13): the operator's signature over each tag id, as uploaded with
-- POST /v1/labels after the ledger checked it. Append-only like the log: a printed label is never changed.
-- (Version 4 so that both backends number it alike; SQLite has no 003, the application role.)
CREATE TABLE tagledger_labels (
    tag       TEXT PRIMARY KEY,
    kid       TEXT NOT NULL CHECK (length(kid) = 16),
    sig       TEXT NOT NULL CHECK (length(sig) = 86),
    stored_at TEXT NOT NULL
);

CREATE TRIGGER tagledger_labels_no_update BEFORE UPDATE ON tagledger_labels
BEGIN
    SELECT RAISE(ABORT, 'tagledger: the labels are append-only (UPDATE refused)');
END;
CREATE TRIGGER tagledger_labels_no_delete BEFORE DELETE ON tagledger_labels
BEGIN
    SELECT RAISE(ABORT, 'tagledger: the labels are append-only (DELETE refused)');
END;
