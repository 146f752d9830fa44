-- Signed QR labels (docs/protocol.md section 13): the operator's signature over each tag id, as uploaded with
-- POST /v1/labels after the ledger checked it. Append-only like the log: a printed label is never changed.
CREATE TABLE tagledger_labels (
    tag       text        PRIMARY KEY,
    kid       text        NOT NULL CHECK (length(kid) = 16),
    sig       text        NOT NULL CHECK (length(sig) = 86),
    stored_at timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER tagledger_labels_append_only BEFORE UPDATE OR DELETE ON tagledger_labels
    FOR EACH ROW EXECUTE FUNCTION tagledger_refuse_change();
CREATE TRIGGER tagledger_labels_no_truncate BEFORE TRUNCATE ON tagledger_labels
    FOR EACH STATEMENT EXECUTE FUNCTION tagledger_refuse_change();

-- The service's role (migration 003) reads and appends, nothing else.
REVOKE ALL ON tagledger_labels FROM PUBLIC;
GRANT SELECT, INSERT ON tagledger_labels TO tagledger_app;
