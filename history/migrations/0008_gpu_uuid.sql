-- GPU history keyed by the GPU's UUID, not by its index (issue 19): when a GPU falls off the
-- bus and the driver numbers the rest anew, a GPU's usage must stay with the card.
--
-- `gpu_key`: the `proc_text` id of the GPU's UUID (the parent GPU's, for a process on a MIG
-- instance), >= 1; or -1 - index for a GPU stored without a UUID, which every row written
-- before this migration is (their usage keeps its index: `host/#index`). `gpu` (the index)
-- stays in `gpu_processes`, for display.

ALTER TABLE gpu_processes ADD COLUMN gpu_key INTEGER NOT NULL DEFAULT 0;
UPDATE gpu_processes SET gpu_key = -1 - gpu;

CREATE TABLE gpu_usage_hour_v2 (
    hour_ms INTEGER NOT NULL,
    host TEXT NOT NULL,
    gpu_key INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    minutes INTEGER NOT NULL,
    memory INTEGER NOT NULL,
    PRIMARY KEY (hour_ms, host, gpu_key, user_id)
) WITHOUT ROWID;
INSERT INTO gpu_usage_hour_v2 (hour_ms, host, gpu_key, user_id, minutes, memory)
    SELECT hour_ms, host, -1 - gpu, user_id, minutes, memory FROM gpu_usage_hour;
DROP TABLE gpu_usage_hour;
ALTER TABLE gpu_usage_hour_v2 RENAME TO gpu_usage_hour;

CREATE TABLE gpu_pids_v2 (
    host TEXT NOT NULL,
    gpu_key INTEGER NOT NULL,
    pid INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    first_ms INTEGER NOT NULL,
    last_ms INTEGER NOT NULL,
    PRIMARY KEY (host, gpu_key, pid, user_id)
) WITHOUT ROWID;
INSERT INTO gpu_pids_v2 (host, gpu_key, pid, user_id, first_ms, last_ms)
    SELECT host, -1 - gpu, pid, user_id, first_ms, last_ms FROM gpu_pids;
DROP TABLE gpu_pids;
ALTER TABLE gpu_pids_v2 RENAME TO gpu_pids;
CREATE INDEX gpu_pids_last ON gpu_pids (last_ms);
