-- Process and GPU history (issue 12): per host and minute, the top processes and every GPU
-- process.
CREATE TABLE top_processes (
    host TEXT NOT NULL,
    minute_ms INTEGER NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (host, minute_ms)
) WITHOUT ROWID;
