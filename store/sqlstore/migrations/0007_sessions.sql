-- Browser sessions of the REST API and UI (sessions.go).
CREATE TABLE sessions (
	hash       {blob} PRIMARY KEY,
	name       text NOT NULL,
	csrf       text NOT NULL,
	epoch      text NOT NULL,
	created_at {time} NOT NULL,
	expires_at {time} NOT NULL
);
CREATE INDEX sessions_expires ON sessions(expires_at);
