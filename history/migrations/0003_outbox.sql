-- The notification outbox (smon-notify): one row per notification and channel, written before
-- any attempt, deleted once delivered. `id` keeps the order per channel.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    notification_id TEXT NOT NULL,
    -- The notification's JSON (smon_api::alerts::Notification).
    body TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    -- No attempt before this (ms since the epoch): the retry backoff.
    next_ms INTEGER NOT NULL,
    last_error TEXT,
    UNIQUE (channel, notification_id)
);
CREATE INDEX outbox_by_channel ON outbox (channel, id);

-- Notifications given up on after the channel's max_age_s: kept for the UI, newest first.
CREATE TABLE outbox_dropped (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    notification_id TEXT NOT NULL,
    body TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    dropped_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT
);
CREATE INDEX outbox_dropped_by_channel ON outbox_dropped (channel, dropped_ms);

-- Alerts an `alertmanager` channel delivered as firing: sent again every `resend_s` until
-- they resolve, since Alertmanager resolves an alert that is not refreshed (as Prometheus
-- does). Keyed by the alert's labels, its identity in Alertmanager.
CREATE TABLE outbox_alertmanager_active (
    channel TEXT NOT NULL,
    labels TEXT NOT NULL,
    -- The postable alert (JSON); its endsAt is set anew on each send.
    body TEXT NOT NULL,
    PRIMARY KEY (channel, labels)
) WITHOUT ROWID;
