-- Fraud flags (docs/_drafts/flags.md): the evidence the writer keeps, and the flags projection's tables.

-- Signed envelopes refused because their tag's life was over (rule `tag.finished`, or `tag.already_attached` on
-- a voided tag), kept as evidence of a reused tag. Only envelopes whose signature verified with a registered key
-- of their actor are kept (the writer checks it), each once (`hash`), at most 100 per tag. They never change
-- custody and are not part of the log. Append-only, like the log.
CREATE TABLE tagledger_rejected_attempts (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tag      text   NOT NULL,
    rule     text   NOT NULL,
    received text   NOT NULL,                -- the ledger's clock when it refused it (protocol time format)
    log_size bigint NOT NULL,                -- the log held this many entries when it was refused
    hash     text   NOT NULL UNIQUE,         -- sha256 of the envelope's canonical bytes
    envelope bytea  NOT NULL                 -- jcs(envelope), as signed
);
CREATE INDEX tagledger_rejected_attempts_tag ON tagledger_rejected_attempts (tag, id);

CREATE TRIGGER tagledger_rejected_attempts_append_only BEFORE UPDATE OR DELETE ON tagledger_rejected_attempts
    FOR EACH ROW EXECUTE FUNCTION tagledger_refuse_change();
CREATE TRIGGER tagledger_rejected_attempts_no_truncate BEFORE TRUNCATE ON tagledger_rejected_attempts
    FOR EACH STATEMENT EXECUTE FUNCTION tagledger_refuse_change();

REVOKE ALL ON tagledger_rejected_attempts FROM PUBLIC;
GRANT SELECT, INSERT ON tagledger_rejected_attempts TO tagledger_app;

-- The flags projection (ledger/flags.py): disposable, rebuilt from the log at will, fully writable by the
-- service's role. Its position is the row 'flags' of tagledger_projection_tracking (migration 003).
CREATE TABLE IF NOT EXISTS tagledger_flags_tags (
    tag   text  PRIMARY KEY,
    codes text  NOT NULL,                    -- the codes of its own flags, comma-separated ('' if none)
    state bytea NOT NULL                     -- jcs(domain.flags.ChainState)
);
CREATE TABLE IF NOT EXISTS tagledger_flags_site_months (
    site    text   NOT NULL,
    month   text   NOT NULL,                 -- YYYY-MM (UTC, by the attachments' time)
    total_g bigint NOT NULL,
    crossed bytea,                           -- the attachment that took the total over the capacity
    PRIMARY KEY (site, month)
);
CREATE TABLE IF NOT EXISTS tagledger_flags_sites (
    site                  text   PRIMARY KEY,
    capacity_kg_per_month bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS tagledger_flags_key_uses (
    seq  bigint PRIMARY KEY,                 -- an entry that joined or created tag streams
    kid  text   NOT NULL,                    -- the key that signed it
    time text   NOT NULL                     -- its time, YYYY-MM-DDTHH:MM:SS.ffffffZ
);
CREATE INDEX IF NOT EXISTS tagledger_flags_key_uses_kid_time ON tagledger_flags_key_uses (kid, time);

GRANT SELECT, INSERT, UPDATE, DELETE ON tagledger_flags_tags, tagledger_flags_site_months, tagledger_flags_sites,
    tagledger_flags_key_uses TO tagledger_app;
