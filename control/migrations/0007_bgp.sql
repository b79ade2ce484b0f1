-- 0007: upstream mitigation over BGP (FlowSpec / RTBH announced by ftcontrol's speaker).
--
-- workspace_prefixes: what a workspace may have announced. A deploy token can register a
--   node with any address; only an address inside one of these (declared by the operator
--   with `ftcontrol workspace prefixes NAME add PREFIX`) is ever announced.
-- bgp_announcements: every announcement, live (withdrawn_at NULL) or past. The live rows
--   are the engine's table: after a restart they are announced again unless expired.
-- bgp_refusals: why an escalation announced nothing (recorded on the incident).
-- incidents.rule_figures: the agent's rules with their structured match fields (the
--   contract's RuleFigure list), which FlowSpec rules are built from.
-- nodes.mitigation_policy / uplink_mbps: when a node is escalated automatically.
-- notification_deliveries: two more event kinds (rebuilt: SQLite cannot change a CHECK).

CREATE TABLE workspace_prefixes (
    id           INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    prefix       TEXT NOT NULL,           -- canonical network form, host bits clear
    created_at   REAL NOT NULL,
    UNIQUE (workspace_id, prefix)
);

CREATE TABLE bgp_announcements (
    id                INTEGER PRIMARY KEY,
    workspace_id      INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    node_id           INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    incident_id       INTEGER REFERENCES incidents(id) ON DELETE SET NULL,
    kind              TEXT NOT NULL CHECK (kind IN ('flowspec', 'rtbh')),
    -- what caused it: an operator, or the automatic policy's trigger
    trigger           TEXT NOT NULL
                      CHECK (trigger IN ('manual', 'uplink_share', 'link_saturated')),
    -- the match: destination always; the rest only for FlowSpec (NULL: not matched on)
    destination       TEXT NOT NULL,      -- "/32" or "/128"
    source            TEXT,
    protocol          INTEGER,
    src_port          INTEGER,
    dst_port          INTEGER,
    tcp_flags         INTEGER,
    tcp_flags_mask    INTEGER,
    packet_length_min INTEGER,
    packet_length_max INTEGER,
    -- the action: discard / rate_limit (FlowSpec) or blackhole (RTBH)
    action            TEXT NOT NULL CHECK (action IN ('discard', 'rate_limit', 'blackhole')),
    rate_pps          REAL,
    next_hop          TEXT,               -- RTBH only
    community         TEXT,               -- RTBH only, "ASN:VALUE"
    announced_at      REAL NOT NULL,      -- last (re)announced: a renewal moves it
    expires_at        REAL NOT NULL,
    withdrawn_at      REAL,
    withdraw_reason   TEXT CHECK (withdraw_reason IN
                      ('operator', 'expired', 'resolved', 'evicted', 'rejected')),
    CHECK ((withdrawn_at IS NULL) = (withdraw_reason IS NULL))
);
CREATE INDEX bgp_announcements_live ON bgp_announcements(expires_at) WHERE withdrawn_at IS NULL;
CREATE INDEX bgp_announcements_workspace ON bgp_announcements(workspace_id, id);
CREATE INDEX bgp_announcements_incident ON bgp_announcements(incident_id);

CREATE TABLE bgp_refusals (
    id           INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    incident_id  INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    action       TEXT NOT NULL CHECK (action IN ('flowspec', 'rtbh')),
    trigger      TEXT NOT NULL CHECK (trigger IN ('manual', 'uplink_share', 'link_saturated')),
    reason       TEXT NOT NULL,
    refused_at   REAL NOT NULL
);
CREATE INDEX bgp_refusals_incident ON bgp_refusals(incident_id, id);

ALTER TABLE incidents ADD COLUMN rule_figures TEXT NOT NULL DEFAULT '[]';

ALTER TABLE nodes ADD COLUMN mitigation_policy TEXT NOT NULL DEFAULT 'local'
    CHECK (mitigation_policy IN ('local', 'flowspec', 'flowspec_then_rtbh'));
ALTER TABLE nodes ADD COLUMN uplink_mbps REAL CHECK (uplink_mbps IS NULL OR uplink_mbps > 0);

-- The rebuild keeps every row. Order matters with foreign keys on: the attempts move to a
-- copy that references the new deliveries table before the old tables are dropped (a DROP
-- of the deliveries table would otherwise cascade into the attempts), and the renames
-- then carry the reference along.
CREATE TABLE notification_deliveries_v7 (
    id              INTEGER PRIMARY KEY,
    channel_id      INTEGER NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    workspace_id    INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    -- "<incident uuid>:opened", "<uuid>:escalated:<severity>", "<uuid>:resolved",
    -- "<uuid>:false_positive", "<uuid>:upstream_announced:<announcement id>:<announced_at>",
    -- "<uuid>:upstream_withdrawn:<announcement id>" or "test:<random uuid>"
    event_key       TEXT NOT NULL,
    event_kind      TEXT NOT NULL
                    CHECK (event_kind IN ('opened', 'escalated', 'resolved',
                                          'false_positive', 'test', 'upstream_announced',
                                          'upstream_withdrawn')),
    incident_uuid   TEXT,
    incident        TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    created_at      REAL NOT NULL,
    finished_at     REAL,
    last_error      TEXT,
    UNIQUE (channel_id, event_key)
);
INSERT INTO notification_deliveries_v7 SELECT * FROM notification_deliveries;

CREATE TABLE notification_attempts_v7 (
    id           INTEGER PRIMARY KEY,
    delivery_id  INTEGER NOT NULL REFERENCES notification_deliveries_v7(id) ON DELETE CASCADE,
    channel_id   INTEGER NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    attempt      INTEGER NOT NULL,
    attempted_at REAL NOT NULL,
    duration_ms  REAL NOT NULL,
    outcome      TEXT NOT NULL CHECK (outcome IN ('delivered', 'retry', 'failed')),
    http_status  INTEGER,
    error        TEXT,
    retry_in_sec REAL
);
INSERT INTO notification_attempts_v7 SELECT * FROM notification_attempts;

DROP TABLE notification_attempts;
DROP TABLE notification_deliveries;
ALTER TABLE notification_deliveries_v7 RENAME TO notification_deliveries;
ALTER TABLE notification_attempts_v7 RENAME TO notification_attempts;
CREATE INDEX notification_deliveries_pending
    ON notification_deliveries(status, channel_id, id);
CREATE INDEX notification_attempts_channel
    ON notification_attempts(channel_id, attempted_at, id);
