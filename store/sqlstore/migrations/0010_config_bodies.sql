-- Config bodies stored once per content hash (steward.ConfigMap.Hash):
-- config versions reference theirs by configs.hash, agents their effective
-- config by agents.effective_hash (bodies.go). used_at is raised by every
-- write that references a body, so pruning (which waits for a body to be
-- unreferenced and unused for a while) cannot remove one a concurrent
-- write is about to reference. The agents' inline effective configs are
-- moved by a step in Go (bodies.go: moveEffectiveConfigs), which hashes
-- them. (WHERE true: SQLite would read ON CONFLICT as a join clause.)
CREATE TABLE config_bodies (
	hash    {blob} PRIMARY KEY,
	files   {json} NOT NULL,
	used_at {time} NOT NULL
);
CREATE INDEX config_bodies_used ON config_bodies(used_at);
INSERT INTO config_bodies (hash, files, used_at)
	SELECT hash, files, created_at FROM configs WHERE true ON CONFLICT (hash) DO NOTHING;
ALTER TABLE configs DROP COLUMN files;
CREATE INDEX configs_hash ON configs(hash);
ALTER TABLE agents ADD COLUMN effective_hash {blob};
CREATE INDEX agents_effective_hash ON agents(effective_hash);
