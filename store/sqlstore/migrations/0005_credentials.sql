-- Agent credentials, API tokens, connection settings and the audit log;
-- records are JSON documents next to the columns they are looked up by.
CREATE TABLE api_tokens (
	id         text PRIMARY KEY,
	hash       {blob} NOT NULL UNIQUE,
	created_at {time} NOT NULL,
	doc        {jsonb} NOT NULL
);
CREATE TABLE enrollment_tokens (
	id         text PRIMARY KEY,
	hash       {blob} NOT NULL UNIQUE,
	created_at {time} NOT NULL,
	doc        {jsonb} NOT NULL
);
CREATE TABLE agent_certificates (
	serial     text PRIMARY KEY,
	agent_id   text NOT NULL,
	created_at {time} NOT NULL,
	doc        {jsonb} NOT NULL
);
CREATE INDEX agent_certificates_agent ON agent_certificates(agent_id, created_at);
CREATE TABLE connection_settings (
	name text PRIMARY KEY,
	doc  {jsonb} NOT NULL
);
CREATE TABLE secrets (
	name  text PRIMARY KEY,
	value {blob} NOT NULL
);
CREATE TABLE audit_log (
	id      {serial},
	time    {time} NOT NULL,
	actor   text NOT NULL,
	action  text NOT NULL,
	target  text NOT NULL,
	details {jsonb}
);
CREATE INDEX audit_log_time ON audit_log(time);
