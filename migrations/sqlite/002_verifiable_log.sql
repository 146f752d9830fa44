-- The verifiable log (docs/protocol.md sections 10-11): the Merkle tree over the log entries and the signed
-- checkpoints. Both are append-only, like the log itself.

-- Every perfect subtree of the RFC 9162 tree: `id` = (level << 56) | index, `hash` = MTH of the leaves
-- [index * 2^level, (index + 1) * 2^level). Level 0 holds the leaf hashes SHA-256(0x00 || entry).
CREATE TABLE tagledger_merkle_nodes (
    id   INTEGER PRIMARY KEY,
    hash BLOB NOT NULL CHECK (length(hash) = 32)
);

-- Every checkpoint the ledger signed: the C2SP tlog-checkpoint note, as published.
CREATE TABLE tagledger_checkpoints (
    size      INTEGER PRIMARY KEY CHECK (size >= 0),
    root      BLOB NOT NULL CHECK (length(root) = 32),
    note      TEXT NOT NULL,
    signed_at TEXT NOT NULL
);

CREATE TRIGGER tagledger_merkle_no_update BEFORE UPDATE ON tagledger_merkle_nodes
BEGIN
    SELECT RAISE(ABORT, 'tagledger: the log is append-only (UPDATE refused)');
END;
CREATE TRIGGER tagledger_merkle_no_delete BEFORE DELETE ON tagledger_merkle_nodes
BEGIN
    SELECT RAISE(ABORT, 'tagledger: the log is append-only (DELETE refused)');
END;
CREATE TRIGGER tagledger_checkpoints_no_update BEFORE UPDATE ON tagledger_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'tagledger: the log is append-only (UPDATE refused)');
END;
CREATE TRIGGER tagledger_checkpoints_no_delete BEFORE DELETE ON tagledger_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'tagledger: the log is append-only (DELETE refused)');
END;
