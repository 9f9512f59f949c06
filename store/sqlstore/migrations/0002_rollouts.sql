-- Staged rollouts: a JSON document per rollout, compare-and-swap on revision.
CREATE TABLE rollouts (
	name       text PRIMARY KEY,
	assignment text NOT NULL,
	revision   integer NOT NULL,
	doc        {jsonb} NOT NULL,
	updated_at {time} NOT NULL
);
CREATE INDEX rollouts_assignment ON rollouts(assignment);
