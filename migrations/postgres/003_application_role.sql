-- The application's role: the service runs as a login role that is a member of `tagledger_app`
-- (docs/architecture.md, "Append-only, enforced by the database"). It may read and append to the log, the
-- Merkle tree and the checkpoints, and nothing else: no UPDATE, DELETE or TRUNCATE privilege, and, not owning
-- the tables, it can neither drop nor disable the append-only triggers. The projection tables are disposable
-- and fully writable by it.
DO $$
BEGIN
    CREATE ROLE tagledger_app NOLOGIN;
EXCEPTION WHEN duplicate_object THEN
    NULL;  -- roles are shared by every database of the cluster
END $$;

CREATE TABLE IF NOT EXISTS tagledger_custody_view (
    tag       text  PRIMARY KEY,
    status    text  NOT NULL,
    holder    text,
    issued_to text  NOT NULL,
    state     bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS tagledger_projection_tracking (
    application_name text   NOT NULL,
    notification_id  bigint,
    PRIMARY KEY (application_name)
);
-- the marker by which `eventsourcing`'s PostgresTrackingRecorder knows its single-row table needs no migration
INSERT INTO tagledger_projection_tracking VALUES ('__migration__', 1) ON CONFLICT DO NOTHING;

REVOKE ALL ON tagledger_events_tt_main, tagledger_events_tt_tag, tagledger_merkle_nodes, tagledger_checkpoints,
    tagledger_schema_migrations FROM PUBLIC;
-- CREATE on the schema lets the `eventsourcing` recorders run their `CREATE TABLE IF NOT EXISTS` on the
-- projection's tables (created above); a table the role creates cannot touch the log.
GRANT USAGE, CREATE ON SCHEMA public TO tagledger_app;
GRANT SELECT, INSERT ON tagledger_events_tt_main, tagledger_events_tt_tag, tagledger_merkle_nodes,
    tagledger_checkpoints TO tagledger_app;
GRANT SELECT ON tagledger_schema_migrations TO tagledger_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON tagledger_custody_view, tagledger_projection_tracking TO tagledger_app;
