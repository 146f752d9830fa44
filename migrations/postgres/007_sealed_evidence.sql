-- Sealed evidence files (docs/protocol.md section 16.2, since 1.10): a photo or a statement that a signed event of
-- an incident names by content hash (`evidence`: {sha256, media_type}), uploaded with
-- PUT /v1/incidents/{id}/evidence/{sha256} after the ledger checked that the bytes hash to that name. Kept outside
-- the log (shown only to authorised readers, 16.4), and append-only like it: an evidence file never changes.
CREATE TABLE tagledger_sealed_evidence (
    incident   text  NOT NULL,
    sha256     text  NOT NULL CHECK (length(sha256) = 64),  -- sha256_hex(data), named by a signed event
    media_type text  NOT NULL,                              -- as the signed event names it
    data       bytea NOT NULL,                              -- the file, byte for byte
    stored_at  text  NOT NULL,                              -- the ledger's clock (protocol time format)
    PRIMARY KEY (incident, sha256)
);

CREATE TRIGGER tagledger_sealed_evidence_append_only BEFORE UPDATE OR DELETE ON tagledger_sealed_evidence
    FOR EACH ROW EXECUTE FUNCTION tagledger_refuse_change();
CREATE TRIGGER tagledger_sealed_evidence_no_truncate BEFORE TRUNCATE ON tagledger_sealed_evidence
    FOR EACH STATEMENT EXECUTE FUNCTION tagledger_refuse_change();

-- The service's role (migration 003) reads and appends, nothing else.
REVOKE ALL ON tagledger_sealed_evidence FROM PUBLIC;
GRANT SELECT, INSERT ON tagledger_sealed_evidence TO tagledger_app;
