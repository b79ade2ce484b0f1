-- 0001: workspaces, deploy tokens, nodes, incidents, notification channels.
-- Times are UNIX epoch seconds (REAL, UTC); the API formats them as ISO 8601.
-- Secrets (deploy tokens, node API keys) are stored only as SHA-256 hex digests.

CREATE TABLE workspaces (
    id                  INTEGER PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE,
    plan                TEXT NOT NULL,
    subscription_status TEXT NOT NULL DEFAULT 'active'
                        CHECK (subscription_status IN ('active', 'past_due', 'canceled')),
    node_limit          INTEGER NOT NULL CHECK (node_limit >= 0),
    created_at          REAL NOT NULL
);

CREATE TABLE tokens (
    id           INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   REAL NOT NULL,
    revoked_at   REAL
);
CREATE INDEX tokens_workspace ON tokens(workspace_id);

CREATE TABLE nodes (
    id               INTEGER PRIMARY KEY,
    uuid             TEXT NOT NULL UNIQUE,
    workspace_id     INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    ip               TEXT NOT NULL,
    location         TEXT,
    os               TEXT,
    interface        TEXT NOT NULL DEFAULT 'eth0',
    priority         TEXT NOT NULL DEFAULT 'normal',
    api_key_hash     TEXT NOT NULL UNIQUE,
    -- Latest rates the agent reported (heartbeat/metrics).
    last_pps         REAL NOT NULL DEFAULT 0,
    last_bps         REAL NOT NULL DEFAULT 0,
    last_seen        REAL,
    -- Baseline the agent learned; NULL until it reports one.
    baseline_avg_pps REAL,
    baseline_p95_pps REAL,
    baseline_protocols TEXT,            -- JSON object: protocol -> percent share
    created_at       REAL NOT NULL,
    deleted_at       REAL                -- soft delete: hidden, key dead, name free again
);
-- A live node's name is unique in its workspace; a deleted node's name may be reused.
CREATE UNIQUE INDEX nodes_live_name ON nodes(workspace_id, name) WHERE deleted_at IS NULL;
CREATE INDEX nodes_live_created ON nodes(workspace_id, created_at) WHERE deleted_at IS NULL;

CREATE TABLE incidents (
    id               INTEGER PRIMARY KEY,
    uuid             TEXT NOT NULL UNIQUE,
    workspace_id     INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    node_id          INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    family           TEXT NOT NULL,
    subtype          TEXT,
    severity         TEXT NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    status           TEXT NOT NULL DEFAULT 'active'
                     CHECK (status IN ('active', 'resolved', 'false_positive')),
    started_at       REAL NOT NULL,
    ended_at         REAL,
    mitigated_at     REAL,               -- first time a mitigation rule was in place
    peak_pps         REAL NOT NULL DEFAULT 0,
    peak_bps         REAL NOT NULL DEFAULT 0,
    protocols        TEXT NOT NULL DEFAULT '{}',  -- JSON: protocol -> percent share
    top_sources      TEXT NOT NULL DEFAULT '[]',  -- JSON: [{ip, pps, bps, country}]
    mitigation_rules TEXT NOT NULL DEFAULT '[]',  -- JSON: [{kind, match, action, ...}]
    -- No stored summary or geo origin: both are built from these fields when read.
    updated_at       REAL NOT NULL
);
-- Lists are newest first, filtered by status and/or severity: each filter combination
-- has an index that both orders the page and covers its count (incidents are written
-- rarely, read often).
CREATE INDEX incidents_workspace_started ON incidents(workspace_id, started_at);
-- The analytics summary reads a time range from this index without touching the wide rows.
CREATE INDEX incidents_workspace_analytics ON incidents(
    workspace_id, started_at, status, family, severity, node_id, peak_pps, ended_at,
    mitigated_at);
CREATE INDEX incidents_workspace_status ON incidents(workspace_id, status, started_at);
CREATE INDEX incidents_workspace_severity ON incidents(workspace_id, severity, started_at);
CREATE INDEX incidents_workspace_severity_status
    ON incidents(workspace_id, severity, status, started_at);
CREATE INDEX incidents_workspace_node ON incidents(workspace_id, node_id, started_at);
-- A node's active incidents (its status and active_incidents in every node listing).
CREATE INDEX incidents_node_status ON incidents(node_id, status, started_at);

CREATE TABLE channels (
    id           INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    type         TEXT NOT NULL,
    config       TEXT NOT NULL,          -- JSON, validated per type at create time
    enabled      INTEGER NOT NULL DEFAULT 1,
    created_at   REAL NOT NULL
);
CREATE INDEX channels_workspace ON channels(workspace_id);
