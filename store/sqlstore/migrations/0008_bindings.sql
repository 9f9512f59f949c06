-- Which enrollment token admitted each agent uid (bindings.go, steward.AgentBinding).
CREATE TABLE agent_bindings (
	agent_id         text PRIMARY KEY,
	enrollment_token text NOT NULL,
	created_at       {time} NOT NULL
);
