-- The inventory edited in the browser (issue 14): clusters and hosts made in the UI. Those of
-- config_app.json are not stored. The tokens are kept here to poll and act on the hosts: the
-- database file is the owner's alone (0600), and the API never returns them.

CREATE TABLE inventory_clusters (
    name TEXT PRIMARY KEY,
    created_by TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);

-- `id` is `cluster:name`. `address` is NULL for a host without an agent (a printer, a NAS, a
-- switch). `tags` is a JSON array of strings; `services` a JSON array of
-- {"name", "port", "type"} as in config_app.json.
CREATE TABLE inventory_hosts (
    id TEXT PRIMARY KEY,
    cluster TEXT NOT NULL,
    name TEXT NOT NULL,
    address TEXT,
    token TEXT,
    ip TEXT,
    mac TEXT,
    wol_broadcast TEXT,
    wol_port INTEGER,
    wol_via TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    services TEXT NOT NULL DEFAULT '[]',
    control_token TEXT,
    created_by TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_by TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX inventory_hosts_by_cluster ON inventory_hosts (cluster);
