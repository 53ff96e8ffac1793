-- Reachability transitions (issue 14): a host's service, or its ping (`subject` 'ping'),
-- going down (`up` 0) or back up (1), as the aggregator's checker saw it. `body` is the
-- transition's JSON (smon_api::reach::ReachTransition). Kept 90 days.
CREATE TABLE reach_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    host TEXT NOT NULL,
    subject TEXT NOT NULL,
    up INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX reach_events_by_host ON reach_events (host, at_ms);
CREATE INDEX reach_events_by_time ON reach_events (at_ms);
