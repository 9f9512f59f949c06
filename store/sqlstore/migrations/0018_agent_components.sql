-- An agent's available components are stored apart, once per content, in
-- config_bodies (a contrib collector reports some 225 of them: 35 KB of
-- JSON that every agent running the distribution carried in its document,
-- read and decoded on every report). agents.components_hash references
-- them; pruning keeps what it references. The documents' inline
-- components are moved by a step in Go (bodies.go: moveComponents).
ALTER TABLE agents ADD COLUMN components_hash {blob};
CREATE INDEX agents_components_hash ON agents(components_hash);
