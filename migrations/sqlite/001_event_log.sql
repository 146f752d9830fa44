-- The log: one row per accepted envelope. `data` is the exact log entry (docs/protocol.md section 5),
-- `tags` the streams it joins (a JSON array), `id` = seq + 1.
CREATE TABLE tagledger_events_tt_main (
    id   INTEGER PRIMARY KEY,
    type TEXT NOT NULL,
    data BLOB NOT NULL,
    tags TEXT NOT NULL
);

CREATE TABLE tagledger_events_tt_tag (
    tag     TEXT NOT NULL,
    main_id INTEGER NOT NULL REFERENCES tagledger_events_tt_main (id)
);
CREATE INDEX tagledger_events_tt_tag_idx_tag_main_id ON tagledger_events_tt_tag (tag, main_id);

-- Gapless: every new position is exactly one more than the last.
CREATE TRIGGER tagledger_events_gapless BEFORE INSERT ON tagledger_events_tt_main
WHEN NEW.id IS NULL OR NEW.id <> (SELECT COALESCE(MAX(id), 0) + 1 FROM tagledger_events_tt_main)
BEGIN
    SELECT RAISE(ABORT, 'tagledger: log positions are gapless');
END;

-- Append-only: no UPDATE or DELETE, ever.
CREATE TRIGGER tagledger_events_no_update BEFORE UPDATE ON tagledger_events_tt_main
BEGIN
    SELECT RAISE(ABORT, 'tagledger: the log is append-only (UPDATE refused)');
END;
CREATE TRIGGER tagledger_events_no_delete BEFORE DELETE ON tagledger_events_tt_main
BEGIN
    SELECT RAISE(ABORT, 'tagledger: the log is append-only (DELETE refused)');
END;
CREATE TRIGGER tagledger_tags_no_update BEFORE UPDATE ON tagledger_events_tt_tag
BEGIN
    SELECT RAISE(ABORT, 'tagledger: the log is append-only (UPDATE refused)');
END;
CREATE TRIGGER tagledger_tags_no_delete BEFORE DELETE ON tagledger_events_tt_tag
BEGIN
    SELECT RAISE(ABORT, 'tagledger: the log is append-only (DELETE refused)');
END;
