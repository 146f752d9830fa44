-- Sealed incident details (docs/protocol.md section 16.2): the object whose hash an `incident_reported` event
-- commits to (`data.details.sha256`), uploaded with PUT /v1/incidents/{id}/details after the ledger checked that
-- sha256(jcs(details)) is that commitment. Kept outside the log (the log is public; these are shown only to
-- authorised readers, 16.4), and append-only like it: sealed details never change.
CREATE TABLE tagledger_sealed_details (
    incident  text  NOT NULL,
    sha256    text  NOT NULL CHECK (length(sha256) = 64),  -- sha256_hex(details), = the signed commitment
    details   bytea NOT NULL,                              -- jcs(details), the exact bytes that were hashed
    stored_at text  NOT NULL,                              -- the ledger's clock (protocol time format)
    PRIMARY KEY (incident, sha256)
);

CREATE TRIGGER tagledger_sealed_details_append_only BEFORE UPDATE OR DELETE ON tagledger_sealed_details
    FOR EACH ROW EXECUTE FUNCTION tagledger_refuse_change();
CREATE TRIGGER tagledger_sealed_details_no_truncate BEFORE TRUNCATE ON tagledger_sealed_details
    FOR EACH STATEMENT EXECUTE FUNCTION tagledger_refuse_change();

-- The service's role (migration 003) reads and appends, nothing else.
REVOKE ALL ON tagledger_sealed_details FROM PUBLIC;
GRANT SELECT, INSERT ON tagledger_sealed_details TO tagledger_app;
