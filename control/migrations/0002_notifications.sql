-- 0002: notification deliveries (one row per event and channel) and their attempts.
-- A delivery is persisted before anything is sent, so pending work survives a restart;
-- UNIQUE(channel_id, event_key) keeps one event from being queued twice for one channel.

CREATE TABLE notification_deliveries (
    id              INTEGER PRIMARY KEY,
    channel_id      INTEGER NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    workspace_id    INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    -- "<incident uuid>:opened", "<uuid>:escalated:<severity>", "<uuid>:resolved",
    -- "<uuid>:false_positive" or "test:<random uuid>"
    event_key       TEXT NOT NULL,
    event_kind      TEXT NOT NULL
                    CHECK (event_kind IN ('opened', 'escalated', 'resolved',
                                          'false_positive', 'test')),
    incident_uuid   TEXT,
    incident        TEXT NOT NULL,          -- JSON: the incident as the API showed it then
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    created_at      REAL NOT NULL,
    finished_at     REAL,
    last_error      TEXT,
    UNIQUE (channel_id, event_key)
);
CREATE INDEX notification_deliveries_pending
    ON notification_deliveries(status, channel_id, id);

CREATE TABLE notification_attempts (
    id           INTEGER PRIMARY KEY,
    delivery_id  INTEGER NOT NULL REFERENCES notification_deliveries(id) ON DELETE CASCADE,
    channel_id   INTEGER NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    attempt      INTEGER NOT NULL,          -- 1 for the first try of a delivery
    attempted_at REAL NOT NULL,
    duration_ms  REAL NOT NULL,
    outcome      TEXT NOT NULL CHECK (outcome IN ('delivered', 'retry', 'failed')),
    http_status  INTEGER,                   -- NULL for SMTP and for network errors
    error        TEXT,
    retry_in_sec REAL                       -- delay chosen before the next try (retry only)
);
CREATE INDEX notification_attempts_channel
    ON notification_attempts(channel_id, attempted_at, id);
