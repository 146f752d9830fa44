-- The custody projection's rows read in byte order of the tag id (issue 13): its summary
-- (`GET /v1/projection`: `position`, `digest`, `by_status`, what `tagledger audit` compares) pages through every
-- row with `WHERE tag COLLATE "C" > $1 ORDER BY tag COLLATE "C" LIMIT n`, whatever the database's locale. The
-- primary key is in the database's collation (`C.UTF-8`, `en_US.UTF-8`, ...), which these queries cannot use:
-- each page was a scan and a sort of the whole table (73 s for 1M tags, docs/benchmarks.md section 13). This
-- index serves them. The table is the projection's (disposable): its rows, not the table, are dropped.
CREATE INDEX IF NOT EXISTS tagledger_custody_view_tag_bytes ON tagledger_custody_view (tag COLLATE "C");
