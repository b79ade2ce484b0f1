-- 0004: incident figures added after 0001.
-- source_count: how many distinct source addresses the agent saw in the attack (a lower
-- bound: the sources of its sampled packets, and at least the top sources listed). It only
-- rises over an incident's life, like the peaks. Incidents stored before this migration
-- start at 0 and take the agent's next report.

ALTER TABLE incidents ADD COLUMN source_count INTEGER NOT NULL DEFAULT 0
    CHECK (source_count >= 0);
