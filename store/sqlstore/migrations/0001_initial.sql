-- The initial schema: agents, configs, assignments, events.
CREATE TABLE agents (
	id              text{bytewise} PRIMARY KEY,
	doc             {json} NOT NULL,
	online          {bool} NOT NULL DEFAULT false,
	healthy         {bool} NOT NULL DEFAULT false,
	service_name    text NOT NULL DEFAULT '',
	host_name       text NOT NULL DEFAULT '',
	service_version text NOT NULL DEFAULT '',
	search          text NOT NULL DEFAULT '',
	replica         text NOT NULL DEFAULT '',
	disconnected_at {time},
	created_at      {time} NOT NULL,
	updated_at      {time} NOT NULL
);
CREATE INDEX agents_online ON agents(online, replica);
CREATE INDEX agents_service_name ON agents(service_name);
CREATE INDEX agents_host_name ON agents(host_name);
-- Heartbeats only touch this narrow table, not the wide agent rows.
CREATE TABLE agent_seen (
	id        text{bytewise} PRIMARY KEY REFERENCES agents(id) ON DELETE CASCADE,
	last_seen {time}
){without_rowid};

CREATE TABLE configs (
	name       text{bytewise} NOT NULL,
	version    integer NOT NULL CHECK (version > 0),
	hash       {blob} NOT NULL,
	files      {json} NOT NULL,
	comment    text NOT NULL DEFAULT '',
	author     text NOT NULL DEFAULT '',
	created_at {time} NOT NULL,
	PRIMARY KEY (name, version)
);

CREATE TABLE assignments (
	name        text{bytewise} PRIMARY KEY,
	config_name text NOT NULL,
	version     integer NOT NULL DEFAULT 0,
	selector    text NOT NULL DEFAULT '',
	agent_id    text,
	priority    integer NOT NULL DEFAULT 0,
	created_at  {time} NOT NULL,
	updated_at  {time} NOT NULL
);
CREATE INDEX assignments_config ON assignments(config_name);

CREATE TABLE events (
	id       {serial},
	type     text NOT NULL,
	agent_id text NOT NULL,
	message  text NOT NULL DEFAULT '',
	details  {json},
	time     {time} NOT NULL
);
CREATE INDEX events_agent_time ON events(agent_id, time);
CREATE INDEX events_time ON events(time);
