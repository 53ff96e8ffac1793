-- Alerting (the aggregator's alerts consumer, issue 13).

-- Rules made in the UI (those of config_app.json are not stored). `body` is the rule's JSON
-- (smon_alerts::RuleConfig).
CREATE TABLE alert_rules (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);

-- Channels made in the UI (those of config_app.json are not stored). `body` is the channel's
-- JSON as `alerts.channels[]` items are written, secrets included: the database file is the
-- owner's alone (0600), and the API never returns them.
CREATE TABLE alert_channels (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);

-- Silences made in the UI. `body` is the silence's JSON (smon_alerts::SilenceConfig).
CREATE TABLE alert_silences (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL
);

-- The alert history: every firing and resolution (smon_api::alerts::Alert as JSON in `body`).
CREATE TABLE alert_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    rule TEXT NOT NULL,
    host TEXT NOT NULL,
    status TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX alert_events_by_time ON alert_events (at_ms);
CREATE INDEX alert_events_by_rule ON alert_events (rule, at_ms);
CREATE INDEX alert_events_by_host ON alert_events (host, at_ms);

-- The engine's state (smon_alerts::EngineState as JSON, acknowledgements included), saved
-- every few seconds and at shutdown, so that a restart does not notify again.
CREATE TABLE alert_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    body TEXT NOT NULL,
    saved_ms INTEGER NOT NULL
);
