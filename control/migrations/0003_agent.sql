-- 0003: the Agent API's state: what agents report (heartbeat details, per-second metrics
-- and their one-minute roll-ups), operator rule commands, incident report sequence
-- numbers (replays never go backwards) and stored pcaps.
-- Times are UNIX epoch seconds (REAL, UTC); metric timestamps are whole seconds.

-- One row per node that has ever reported; the node's live columns (last_seen, last_pps,
-- last_bps, baseline_*) stay on `nodes`, where the REST API reads them.
CREATE TABLE agent_state (
    node_id          INTEGER PRIMARY KEY REFERENCES nodes(id) ON DELETE CASCADE,
    version          TEXT,
    xdp_mode         TEXT,
    interface        TEXT,
    baseline_state   TEXT,
    attack_state     TEXT,
    mitigation_mode  TEXT,
    spool_size       INTEGER NOT NULL DEFAULT 0,
    rules_active     INTEGER NOT NULL DEFAULT 0,
    uptime_s         REAL,
    last_heartbeat   REAL,
    -- the newest metric point applied to the node's live columns (a replay of older
    -- points must not overwrite them)
    last_metric_ts   INTEGER,
    last_dropped_pps REAL NOT NULL DEFAULT 0,
    last_protocols   TEXT NOT NULL DEFAULT '{}',   -- JSON: class -> pps
    baseline_p99_pps REAL,
    -- bumped whenever GET config would answer differently
    config_version   INTEGER NOT NULL DEFAULT 1,
    -- JSON: the operator's overrides served by GET config (thresholds, mode, allowlist,
    -- sampling); '{}' = the agent's own settings
    overrides        TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE node_metrics_raw (
    node_id      INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    ts           INTEGER NOT NULL,
    pps          REAL NOT NULL,
    bps          REAL NOT NULL,
    dropped_pps  REAL NOT NULL DEFAULT 0,
    dropped_bps  REAL NOT NULL DEFAULT 0,
    tcp_pps      REAL NOT NULL DEFAULT 0,
    udp_pps      REAL NOT NULL DEFAULT 0,
    icmp_pps     REAL NOT NULL DEFAULT 0,
    other_pps    REAL NOT NULL DEFAULT 0,
    fragment_pps REAL NOT NULL DEFAULT 0,
    syn_pps      REAL NOT NULL DEFAULT 0,
    attack       INTEGER NOT NULL DEFAULT 0,
    baseline_avg_pps REAL,
    baseline_p95_pps REAL,
    baseline_p99_pps REAL,
    PRIMARY KEY (node_id, ts)
) WITHOUT ROWID;
CREATE INDEX node_metrics_raw_ts ON node_metrics_raw(ts);

CREATE TABLE node_metrics_minute (
    node_id          INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    minute           INTEGER NOT NULL,          -- start of the minute
    samples          INTEGER NOT NULL,
    pps_avg          REAL NOT NULL,
    pps_max          REAL NOT NULL,
    bps_avg          REAL NOT NULL,
    bps_max          REAL NOT NULL,
    dropped_pps_avg  REAL NOT NULL,
    tcp_pps_avg      REAL NOT NULL,
    udp_pps_avg      REAL NOT NULL,
    icmp_pps_avg     REAL NOT NULL,
    other_pps_avg    REAL NOT NULL,
    fragment_pps_avg REAL NOT NULL,
    syn_pps_avg      REAL NOT NULL,
    attack_samples   INTEGER NOT NULL,
    baseline_p95_pps REAL,
    PRIMARY KEY (node_id, minute)
) WITHOUT ROWID;
CREATE INDEX node_metrics_minute_minute ON node_metrics_minute(minute);

-- An operator's block of an address or prefix on one node (REST API), and its removal.
CREATE TABLE node_rules (
    id           INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    node_id      INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    target       TEXT NOT NULL,                 -- canonical address or prefix
    ttl_s        REAL NOT NULL,
    created_at   REAL NOT NULL,
    removed_at   REAL                           -- DELETE asked for; an unblock is queued
);
CREATE INDEX node_rules_node ON node_rules(node_id, id);

-- What the agent must do: block/unblock, in id order, until it acks.
CREATE TABLE rule_commands (
    id         INTEGER PRIMARY KEY,
    rule_id    INTEGER NOT NULL REFERENCES node_rules(id) ON DELETE CASCADE,
    node_id    INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    action     TEXT NOT NULL CHECK (action IN ('block', 'unblock')),
    created_at REAL NOT NULL,
    acked_at   REAL,
    ok         INTEGER,
    error      TEXT
);
CREATE INDEX rule_commands_pending ON rule_commands(node_id, acked_at, id);

-- The highest report sequence number applied to an incident by its agent.
CREATE TABLE incident_report_seq (
    incident_id INTEGER PRIMARY KEY REFERENCES incidents(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL
);

CREATE TABLE incident_pcaps (
    incident_id INTEGER PRIMARY KEY REFERENCES incidents(id) ON DELETE CASCADE,
    file        TEXT NOT NULL,                  -- path relative to the data directory
    sha256      TEXT NOT NULL,
    size        INTEGER NOT NULL,
    uploaded_at REAL NOT NULL
);
