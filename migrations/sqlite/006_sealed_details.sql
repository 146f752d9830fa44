-- Sealed incident details (docs/protocol.md section 16.2): the object whose hash an `incident_reported` event
-- commits to (`data.details.sha256`), uploaded with PUT /v1/incidents/{id}/details after the ledger checked that
-- sha256(jcs(details)) is that commitment. Kept outside the log (the log is public; these are shown only to
-- authorised readers, 16.4), and append-only like it: sealed details never change.
CREATE TABLE tagledger_sealed_details (
    incident  TEXT NOT NULL,
    sha256    TEXT NOT NULL CHECK (length(sha256) = 64),  -- sha256_hex(details), = the signed commitment
    details   BLOB NOT NULL,                              -- jcs(details), the exact bytes that were hashed
    stored_at TEXT NOT NULL,                              -- the ledger's clock (protocol time format)
    PRIMARY KEY (incident, sha256)
);

CREATE TRIGGER tagledger_sealed_details_no_update BEFORE UPDATE ON tagledger_sealed_details
BEGIN
    SELECT RAISE(ABORT, 'tagledger: the sealed details are append-only (UPDATE refused)');
END;
CREATE TRIGGER tagledger_sealed_details_no_delete BEFORE DELETE ON tagledger_sealed_details
BEGIN
    SELECT RAISE(ABORT, 'tagledger: the sealed details are append-only (DELETE refused)');
END;
