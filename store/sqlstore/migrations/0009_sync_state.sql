-- The agent's sync state (steward.Agent.SyncState) as a column, for
-- filtering and Summary. Agents stored before it: offline when offline,
-- else pending until their next report derives it.
ALTER TABLE agents ADD COLUMN sync_state text NOT NULL DEFAULT 'pending';
UPDATE agents SET sync_state = 'offline' WHERE NOT online;
CREATE INDEX agents_sync_state ON agents(sync_state);
