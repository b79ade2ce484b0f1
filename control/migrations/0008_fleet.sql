-- 0008: fleet detection (attacks spread over a group of nodes) and its incidents.
-- ftcontrol: rebuilds referenced tables
--
-- incidents: `scope` 'node' (an agent's incident, node_id set) or 'fleet' (opened by the
--   control plane for a group: node_id NULL, `group_key` the group's prefix or
--   'workspace'); `fleet_incident_id` links a node incident that opened during a fleet
--   incident of one of its groups to it; `fleet_vectors` what the nodes were ordered
--   to drop. Rebuilt (SQLite cannot drop a NOT NULL): every
--   row is kept, children keep their references (checked before commit).
-- bgp_announcements: a fleet incident's FlowSpec rule is for the group's prefix, not for
--   one node (node_id NULL), triggered by the group's summed rate ('fleet_uplink_share').
-- bgp_refusals: a refused fleet FlowSpec rule is recorded with that trigger too.
-- fleet_groups: per group settings (uplink, threshold overrides); a group with no row
--   uses the defaults. group_key is a declared prefix of the workspace or 'workspace'.
-- fleet_baselines: each group's learned baseline (kept across restarts).
-- fleet_incident_nodes: what each node of a fleet incident's group carried and did.

CREATE TABLE incidents_v8 (
    id               INTEGER PRIMARY KEY,
    uuid             TEXT NOT NULL UNIQUE,
    workspace_id     INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    node_id          INTEGER REFERENCES nodes(id) ON DELETE CASCADE,
    family           TEXT NOT NULL,
    subtype          TEXT,
    severity         TEXT NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    status           TEXT NOT NULL DEFAULT 'active'
                     CHECK (status IN ('active', 'resolved', 'false_positive')),
    started_at       REAL NOT NULL,
    ended_at         REAL,
    mitigated_at     REAL,
    peak_pps         REAL NOT NULL DEFAULT 0,
    peak_bps         REAL NOT NULL DEFAULT 0,
    protocols        TEXT NOT NULL DEFAULT '{}',
    top_sources      TEXT NOT NULL DEFAULT '[]',
    mitigation_rules TEXT NOT NULL DEFAULT '[]',
    updated_at       REAL NOT NULL,
    source_count     INTEGER NOT NULL DEFAULT 0 CHECK (source_count >= 0),
    peak_burst_pps   REAL NOT NULL DEFAULT 0 CHECK (peak_burst_pps >= 0),
    peak_burst_bps   REAL NOT NULL DEFAULT 0 CHECK (peak_burst_bps >= 0),
    end_reason       TEXT
                     CHECK (end_reason IN ('cooled_down', 'agent_stopped', 'agent_restarted')),
    rule_figures     TEXT NOT NULL DEFAULT '[]',
    scope            TEXT NOT NULL DEFAULT 'node' CHECK (scope IN ('node', 'fleet')),
    group_key        TEXT,
    fleet_incident_id INTEGER REFERENCES incidents(id) ON DELETE SET NULL,
    -- a fleet incident's vectors as classified from the group's sum (JSON: [FleetVector]):
    -- what every node's order is planned from, kept for a restart
    fleet_vectors    TEXT NOT NULL DEFAULT '[]',
    -- 1 while the agent's severity was judged on the confirming window alone: the report
    -- that settles it is a refinement, not an escalation (one notification)
    severity_provisional INTEGER NOT NULL DEFAULT 0 CHECK (severity_provisional IN (0, 1)),
    CHECK ((scope = 'node') = (node_id IS NOT NULL)),
    CHECK ((scope = 'fleet') = (group_key IS NOT NULL))
);
INSERT INTO incidents_v8 (id, uuid, workspace_id, node_id, family, subtype, severity, status,
    started_at, ended_at, mitigated_at, peak_pps, peak_bps, protocols, top_sources,
    mitigation_rules, updated_at, source_count, peak_burst_pps, peak_burst_bps, end_reason,
    rule_figures)
SELECT id, uuid, workspace_id, node_id, family, subtype, severity, status, started_at,
    ended_at, mitigated_at, peak_pps, peak_bps, protocols, top_sources, mitigation_rules,
    updated_at, source_count, peak_burst_pps, peak_burst_bps, end_reason, rule_figures
FROM incidents;
DROP TABLE incidents;
ALTER TABLE incidents_v8 RENAME TO incidents;
CREATE INDEX incidents_workspace_started ON incidents(workspace_id, started_at);
CREATE INDEX incidents_workspace_analytics ON incidents(
    workspace_id, started_at, status, family, severity, node_id, peak_pps, ended_at,
    mitigated_at);
CREATE INDEX incidents_workspace_status ON incidents(workspace_id, status, started_at);
CREATE INDEX incidents_workspace_severity ON incidents(workspace_id, severity, started_at);
CREATE INDEX incidents_workspace_severity_status
    ON incidents(workspace_id, severity, status, started_at);
CREATE INDEX incidents_workspace_node ON incidents(workspace_id, node_id, started_at);
CREATE INDEX incidents_node_status ON incidents(node_id, status, started_at);
CREATE INDEX incidents_workspace_scope ON incidents(workspace_id, scope, status, started_at);
CREATE INDEX incidents_fleet_link ON incidents(fleet_incident_id)
    WHERE fleet_incident_id IS NOT NULL;

CREATE TABLE bgp_announcements_v8 (
    id                INTEGER PRIMARY KEY,
    workspace_id      INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    node_id           INTEGER REFERENCES nodes(id) ON DELETE CASCADE,
    incident_id       INTEGER REFERENCES incidents(id) ON DELETE SET NULL,
    kind              TEXT NOT NULL CHECK (kind IN ('flowspec', 'rtbh')),
    trigger           TEXT NOT NULL
                      CHECK (trigger IN ('manual', 'uplink_share', 'link_saturated',
                                         'fleet_uplink_share')),
    -- the match: destination always ("/32", "/128", or a fleet group's prefix)
    destination       TEXT NOT NULL,
    source            TEXT,
    protocol          INTEGER,
    src_port          INTEGER,
    dst_port          INTEGER,
    tcp_flags         INTEGER,
    tcp_flags_mask    INTEGER,
    packet_length_min INTEGER,
    packet_length_max INTEGER,
    action            TEXT NOT NULL CHECK (action IN ('discard', 'rate_limit', 'blackhole')),
    rate_pps          REAL,
    next_hop          TEXT,
    community         TEXT,
    announced_at      REAL NOT NULL,
    expires_at        REAL NOT NULL,
    withdrawn_at      REAL,
    withdraw_reason   TEXT CHECK (withdraw_reason IN
                      ('operator', 'expired', 'resolved', 'evicted', 'rejected')),
    CHECK ((withdrawn_at IS NULL) = (withdraw_reason IS NULL)),
    -- a node's announcement names its node; a fleet one (for a prefix) names none
    CHECK ((trigger = 'fleet_uplink_share') = (node_id IS NULL))
);
INSERT INTO bgp_announcements_v8 SELECT * FROM bgp_announcements;
DROP TABLE bgp_announcements;
ALTER TABLE bgp_announcements_v8 RENAME TO bgp_announcements;
CREATE INDEX bgp_announcements_live ON bgp_announcements(expires_at) WHERE withdrawn_at IS NULL;
CREATE INDEX bgp_announcements_workspace ON bgp_announcements(workspace_id, id);
CREATE INDEX bgp_announcements_incident ON bgp_announcements(incident_id);

CREATE TABLE bgp_refusals_v8 (
    id           INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    incident_id  INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    action       TEXT NOT NULL CHECK (action IN ('flowspec', 'rtbh')),
    trigger      TEXT NOT NULL CHECK (trigger IN ('manual', 'uplink_share', 'link_saturated',
                                                  'fleet_uplink_share')),
    reason       TEXT NOT NULL,
    refused_at   REAL NOT NULL
);
INSERT INTO bgp_refusals_v8 SELECT * FROM bgp_refusals;
DROP TABLE bgp_refusals;
ALTER TABLE bgp_refusals_v8 RENAME TO bgp_refusals;
CREATE INDEX bgp_refusals_incident ON bgp_refusals(incident_id, id);

CREATE TABLE fleet_groups (
    id           INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    group_key    TEXT NOT NULL,           -- a declared prefix (canonical form) or 'workspace'
    uplink_mbps  REAL CHECK (uplink_mbps IS NULL OR uplink_mbps > 0),
    thresholds   TEXT NOT NULL DEFAULT '{}',  -- JSON: the group's overrides (FleetThresholds)
    updated_at   REAL NOT NULL,
    UNIQUE (workspace_id, group_key)
);

CREATE TABLE fleet_baselines (
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    group_key    TEXT NOT NULL,
    state        TEXT NOT NULL,           -- JSON: the group baseline's saved state
    saved_at     REAL NOT NULL,
    PRIMARY KEY (workspace_id, group_key)
);

CREATE TABLE fleet_incident_nodes (
    incident_id     INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    node_id         INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    -- the node's share of the group's attack traffic (0..1) and its own peaks
    share           REAL NOT NULL DEFAULT 0 CHECK (share >= 0 AND share <= 1),
    peak_pps        REAL NOT NULL DEFAULT 0 CHECK (peak_pps >= 0),
    peak_bps        REAL NOT NULL DEFAULT 0 CHECK (peak_bps >= 0),
    -- the rules the node reported in force for this incident (JSON: [RuleFigure]) and
    -- since when; NULL: none reported (yet, or an agent that does not know fleet rules)
    rules           TEXT NOT NULL DEFAULT '[]',
    dropped_packets INTEGER NOT NULL DEFAULT 0 CHECK (dropped_packets >= 0),
    spared_packets  INTEGER NOT NULL DEFAULT 0 CHECK (spared_packets >= 0),
    in_force_since  REAL,
    -- 'reporting', 'missing' (its points stopped), 'removed' (deleted or left the group)
    state           TEXT NOT NULL DEFAULT 'reporting'
                    CHECK (state IN ('reporting', 'missing', 'removed')),
    updated_at      REAL NOT NULL,
    PRIMARY KEY (incident_id, node_id)
);
CREATE INDEX fleet_incident_nodes_node ON fleet_incident_nodes(node_id);
