-- Sealed evidence files (docs/protocol.md section 16.2, since 1.10): a photo or a statement that a signed event of
-- an incident names by content hash (`evidence`: {sha256, media_type}), uploaded with
-- PUT /v1/incidents/{id}/evidence/{sha256} after the ledger checked that the bytes hash to that name. Kept outside
-- the log (shown only to authorised readers, 16.4), and append-only like it: an evidence file never changes.
CREATE TABLE tagledger_sealed_evidence (
    incident   TEXT NOT NULL,
    sha256     TEXT NOT NULL CHECK (length(sha256) = 64),  -- sha256_hex(data), named by a signed event
    media_type TEXT NOT NULL,                              -- as the signed event names it
    data       BLOB NOT NULL,                              -- the file, byte for byte
    stored_at  TEXT NOT NULL,                              -- the ledger's clock (protocol time format)
    PRIMARY KEY (incident, sha256)
);

CREATE TRIGGER tagledger_sealed_evidence_no_update BEFORE UPDATE ON tagledger_sealed_evidence
BEGIN
    SELECT RAISE(ABORT, 'tagledger: the sealed evidence is append-only (UPDATE refused)');
END;
CREATE TRIGGER tagledger_sealed_evidence_no_delete BEFORE DELETE ON tagledger_sealed_evidence
BEGIN
    SELECT RAISE(ABORT, 'tagledger: the sealed evidence is append-only (DELETE refused)');
END;
