-- 0005: the short-window peak and why the agent ended an incident.
-- peak_burst_pps / peak_burst_bps: the highest rate over one detection window (100 ms by
-- default); they only rise, like peak_pps / peak_bps (the highest one-second rates).
-- Incidents stored before this migration start at 0 and take the agent's next report.
-- end_reason: the agent's reason when it resolved the incident (cooled_down,
-- agent_stopped, agent_restarted); NULL while active and when a person closed it.

ALTER TABLE incidents ADD COLUMN peak_burst_pps REAL NOT NULL DEFAULT 0
    CHECK (peak_burst_pps >= 0);
ALTER TABLE incidents ADD COLUMN peak_burst_bps REAL NOT NULL DEFAULT 0
    CHECK (peak_burst_bps >= 0);
ALTER TABLE incidents ADD COLUMN end_reason TEXT
    CHECK (end_reason IN ('cooled_down', 'agent_stopped', 'agent_restarted'));
