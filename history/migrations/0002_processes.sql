-- Process and GPU history (issue 12): per host and minute, the top processes and every GPU
-- process; the logins and logouts seen in the samples' sessions. All keyed by time first, so
-- that retention deletes a key range and the newest rows are appended at the end of the trees.

-- Strings (process names, users, command lines, GPU UUIDs), stored once: a process that stays
-- on top for a week costs its command line once. `last_ms` is refreshed at most once a day
-- while the string is still written, so retention drops the strings that no kept row uses.
CREATE TABLE proc_text (
    id INTEGER PRIMARY KEY,
    text TEXT NOT NULL UNIQUE,
    last_ms INTEGER NOT NULL
);
CREATE INDEX proc_text_last ON proc_text (last_ms);

-- One row per host and minute (also when the host had no process to list): the top 10 by CPU
-- and the top 10 by memory, as a compact binary body (see `procs.rs`, `Body`).
CREATE TABLE top_processes (
    minute_ms INTEGER NOT NULL,
    host TEXT NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (minute_ms, host)
) WITHOUT ROWID;

-- Every process on a GPU, per host and minute: GPU usage is summed from these rows in SQL.
CREATE TABLE gpu_processes (
    minute_ms INTEGER NOT NULL,
    host TEXT NOT NULL,
    gpu INTEGER NOT NULL,
    pid INTEGER NOT NULL,
    uuid_id INTEGER NOT NULL,
    name_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    memory_bytes INTEGER,
    PRIMARY KEY (minute_ms, host, gpu, pid)
) WITHOUT ROWID;

-- GPU usage per hour, kept up to date as GPU rows are written, so that a usage query over
-- days reads a row per (hour, host, GPU, user) instead of one per process and minute.
-- `user_id` -1: any user (minutes in which the GPU held at least one process). `minutes`:
-- minutes held; `memory`: the GPU memory of those processes summed over those minutes (bytes).
CREATE TABLE gpu_usage_hour (
    hour_ms INTEGER NOT NULL,
    host TEXT NOT NULL,
    gpu INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    minutes INTEGER NOT NULL,
    memory INTEGER NOT NULL,
    PRIMARY KEY (hour_ms, host, gpu, user_id)
) WITHOUT ROWID;

-- Each GPU process once, with the first and last minute it was seen (a pid reused by the same
-- user on the same GPU counts once): the distinct processes of a usage query.
CREATE TABLE gpu_pids (
    host TEXT NOT NULL,
    gpu INTEGER NOT NULL,
    pid INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    first_ms INTEGER NOT NULL,
    last_ms INTEGER NOT NULL,
    PRIMARY KEY (host, gpu, pid, user_id)
) WITHOUT ROWID;
CREATE INDEX gpu_pids_last ON gpu_pids (last_ms);

-- The sessions of each host at its last sample (survives a restart, so that a logout during
-- the restart is still seen): a JSON array of [user, terminal, from, login_ms].
CREATE TABLE session_state (
    host TEXT PRIMARY KEY,
    sessions TEXT NOT NULL
) WITHOUT ROWID;

-- Logins and logouts.
CREATE TABLE login_events (
    host TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('login', 'logout')),
    user TEXT NOT NULL,
    terminal TEXT NOT NULL,
    from_host TEXT NOT NULL,
    login_ms INTEGER NOT NULL,
    PRIMARY KEY (host, at_ms, kind, terminal, user, login_ms)
) WITHOUT ROWID;
CREATE INDEX login_events_at ON login_events (at_ms);
