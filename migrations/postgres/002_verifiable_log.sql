-- The verifiable log (docs/protocol.md sections 10-11): the Merkle tree over the log entries and the signed
-- checkpoints. Both are append-only, like the log itself.

-- Every perfect subtree of the RFC 9162 tree: `id` = (level << 56) | index, `hash` = MTH of the leaves
-- [index * 2^level, (index + 1) * 2^level). Level 0 holds the leaf hashes SHA-256(0x00 || entry).
CREATE TABLE tagledger_merkle_nodes (
    id   bigint PRIMARY KEY,
    hash bytea  NOT NULL CHECK (length(hash) = 32)
);

-- Every checkpoint the ledger signed: the C2SP tlog-checkpoint note, as published.
CREATE TABLE tagledger_checkpoints (
    size      bigint      PRIMARY KEY CHECK (size >= 0),
    root      bytea       NOT NULL CHECK (length(root) = 32),
    note      text        NOT NULL,
    signed_at timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER tagledger_merkle_append_only BEFORE UPDATE OR DELETE ON tagledger_merkle_nodes
    FOR EACH ROW EXECUTE FUNCTION tagledger_refuse_change();
CREATE TRIGGER tagledger_merkle_no_truncate BEFORE TRUNCATE ON tagledger_merkle_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION tagledger_refuse_change();
CREATE TRIGGER tagledger_checkpoints_append_only BEFORE UPDATE OR DELETE ON tagledger_checkpoints
    FOR EACH ROW EXECUTE FUNCTION tagledger_refuse_change();
CREATE TRIGGER tagledger_checkpoints_no_truncate BEFORE TRUNCATE ON tagledger_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION tagledger_refuse_change();
