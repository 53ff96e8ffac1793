-- API tokens and the audit log (issue 14).

-- API tokens (`smon-aggregator token create`). Only the SHA-256 of a token is kept (hex); the
-- token itself is shown once. A revoked token's row is deleted.
CREATE TABLE api_tokens (
    name TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    last_used_ms INTEGER
);

-- The audit log: account changes, host actions, tokens made and revoked. `hosts` and
-- `results` are JSON (a list of host ids; the action's per-host results).
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    client TEXT,
    action TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    role TEXT,
    hosts TEXT NOT NULL DEFAULT '[]',
    outcome TEXT NOT NULL,
    results TEXT
);
CREATE INDEX audit_action ON audit (action, id);
