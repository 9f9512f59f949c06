-- Fleet queries: the health the list shows as a column (unknown when
-- offline or never reported, as sync_state is offline), set for stored
-- agents by the dialect's file; and indexes that serve "filter by sync
-- state / health, sorted by id, first page" from the index alone.
-- sync_state and health hold lower-case ASCII names that sort the same in
-- every collation, so they need no {bytewise}.
ALTER TABLE agents ADD COLUMN health text NOT NULL DEFAULT 'unknown';
DROP INDEX agents_sync_state;
CREATE INDEX agents_sync_state ON agents(sync_state, id);
CREATE INDEX agents_health ON agents(health, id);
