-- Metric history (issue 12). The series of every host: one row per metric and label.
CREATE TABLE series (
    id INTEGER PRIMARY KEY,
    host TEXT NOT NULL,
    metric TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    UNIQUE (host, metric, label)
);
