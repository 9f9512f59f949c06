-- Minute rollups of the agents' own telemetry (steward.TelemetryRollup):
-- per agent and minute (unix seconds), the increase over the minute of the
-- rate series and the highest value of the levels; NULL: nothing received.
-- Kept 7 days (the telemetry package deletes older minutes).
CREATE TABLE telemetry_rollups (
	agent_id text NOT NULL,
	minute bigint NOT NULL,
	cpu double precision,
	memory_rss double precision,
	received double precision,
	refused double precision,
	sent double precision,
	send_failed double precision,
	queue_size double precision,
	queue_capacity double precision,
	PRIMARY KEY (agent_id, minute)
);
CREATE INDEX telemetry_rollups_minute ON telemetry_rollups(minute);
