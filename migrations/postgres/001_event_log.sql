-- The log: one row per accepted envelope. `data` is the exact log entry (docs/protocol.md section 5),
-- `tags` the streams it joins, `id` = seq + 1. Types and index names match eventsourcing.dcb.postgres_tt.
CREATE TYPE dcb_event_tt AS (type text, data bytea, tags text[]);
CREATE TYPE dcb_query_item_tt AS (types text[], tags text[]);

CREATE TABLE tagledger_events_tt_main (
    id   bigint PRIMARY KEY,
    type text   NOT NULL,
    data bytea  NOT NULL,
    tags text[] NOT NULL
);
CREATE UNIQUE INDEX tagledger_events_tt_main_idx_id_type ON tagledger_events_tt_main (id) INCLUDE (type);

CREATE TABLE tagledger_events_tt_tag (
    tag     text   NOT NULL,
    main_id bigint NOT NULL REFERENCES tagledger_events_tt_main (id)
);
CREATE INDEX tagledger_events_tt_tag_idx_tag_main_id ON tagledger_events_tt_tag (tag, main_id);

-- Gapless: every new position is exactly one more than the last (rows of one INSERT see the ones before).
CREATE FUNCTION tagledger_check_gapless() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id IS DISTINCT FROM (SELECT COALESCE(MAX(id), 0) + 1 FROM tagledger_events_tt_main) THEN
        RAISE EXCEPTION 'tagledger: log positions are gapless (got %)', NEW.id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER tagledger_events_gapless BEFORE INSERT ON tagledger_events_tt_main
    FOR EACH ROW EXECUTE FUNCTION tagledger_check_gapless();

-- Append-only: no UPDATE, DELETE or TRUNCATE, ever.
CREATE FUNCTION tagledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'tagledger: the log is append-only (% on % refused)', TG_OP, TG_TABLE_NAME;
END $$;
CREATE TRIGGER tagledger_events_append_only BEFORE UPDATE OR DELETE ON tagledger_events_tt_main
    FOR EACH ROW EXECUTE FUNCTION tagledger_refuse_change();
CREATE TRIGGER tagledger_events_no_truncate BEFORE TRUNCATE ON tagledger_events_tt_main
    FOR EACH STATEMENT EXECUTE FUNCTION tagledger_refuse_change();
CREATE TRIGGER tagledger_tags_append_only BEFORE UPDATE OR DELETE ON tagledger_events_tt_tag
    FOR EACH ROW EXECUTE FUNCTION tagledger_refuse_change();
CREATE TRIGGER tagledger_tags_no_truncate BEFORE TRUNCATE ON tagledger_events_tt_tag
    FOR EACH STATEMENT EXECUTE FUNCTION tagledger_refuse_change();
