-- An agent's state (connection, health, remote config status, sync state: what
-- steward.AgentStateStore writes) as a JSON document of its own next to doc, so that
-- the group commit writes a connect, a disconnect or a config
-- acknowledgement with a narrow UPDATE instead of the whole document. NULL
-- for rows written before: their state is read from doc until they are
-- next written whole.
ALTER TABLE agents ADD COLUMN state {json};
