-- Metric history (issue 12). Layout and byte formats: history/src/metrics.rs and codec.rs.

-- Hosts, and the pseudo hosts `@cluster` that hold the clusters' aggregate series.
CREATE TABLE hosts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

-- One row per host, metric and label.
CREATE TABLE series (
    id INTEGER PRIMARY KEY,
    host_id INTEGER NOT NULL REFERENCES hosts (id),
    metric TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    UNIQUE (host_id, metric, label)
);

-- Raw tier, not yet in a block: one row per host sample (codec.rs, staging row).
CREATE TABLE raw_staging (
    host_id INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (host_id, ts_ms)
) WITHOUT ROWID;

-- Raw tier: one compressed block per host and 10-minute window.
CREATE TABLE raw_blocks (
    host_id INTEGER NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    n INTEGER NOT NULL,
    body BLOB NOT NULL,
    UNIQUE (host_id, start_ms)
);
CREATE INDEX raw_blocks_end ON raw_blocks (end_ms);

-- 1-minute tier: rows of the hours not yet in a block (values quantised like the samples).
CREATE TABLE minute_staging (
    series_id INTEGER NOT NULL,
    t_ms INTEGER NOT NULL,
    min INTEGER NOT NULL,
    avg INTEGER NOT NULL,
    max INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (series_id, t_ms)
) WITHOUT ROWID;

-- 1-minute tier: one block per series and hour.
CREATE TABLE minute_blocks (
    series_id INTEGER NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    n INTEGER NOT NULL,
    body BLOB NOT NULL,
    UNIQUE (series_id, start_ms)
);
CREATE INDEX minute_blocks_end ON minute_blocks (end_ms);

-- 1-hour tier: rows of the days not yet in a block.
CREATE TABLE hour_staging (
    series_id INTEGER NOT NULL,
    t_ms INTEGER NOT NULL,
    min INTEGER NOT NULL,
    avg INTEGER NOT NULL,
    max INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (series_id, t_ms)
) WITHOUT ROWID;

-- 1-hour tier: one block per series and day.
CREATE TABLE hour_blocks (
    series_id INTEGER NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    n INTEGER NOT NULL,
    body BLOB NOT NULL,
    UNIQUE (series_id, start_ms)
);
CREATE INDEX hour_blocks_end ON hour_blocks (end_ms);

-- The rollups' progress: `minute_done_ms` (every minute before it is in the 1-minute tier),
-- `hour_done_ms`, `day_done_ms`.
CREATE TABLE metrics_meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
