--
-- PostgreSQL database dump
--

\restrict cAsH9oNtQXNTVyGI6eD2jysENXgcYLxiLKaYlEeOLUD9Hn53Mwfwvkl2BhMQ6m8

-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: steward_v6; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA steward_v6;


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: agent_certificates; Type: TABLE; Schema: steward_v6; Owner: -
--

CREATE TABLE steward_v6.agent_certificates (
    serial text NOT NULL,
    agent_id text NOT NULL,
    created_at timestamp with time zone NOT NULL,
    doc jsonb NOT NULL
);


--
-- Name: agent_seen; Type: TABLE; Schema: steward_v6; Owner: -
--

CREATE TABLE steward_v6.agent_seen (
    id text NOT NULL COLLATE pg_catalog."C",
    last_seen timestamp with time zone
);


--
-- Name: agents; Type: TABLE; Schema: steward_v6; Owner: -
--

CREATE TABLE steward_v6.agents (
    id text NOT NULL COLLATE pg_catalog."C",
    doc json NOT NULL,
    online boolean DEFAULT false NOT NULL,
    healthy boolean DEFAULT false NOT NULL,
    service_name text DEFAULT ''::text NOT NULL,
    host_name text DEFAULT ''::text NOT NULL,
    service_version text DEFAULT ''::text NOT NULL,
    search text DEFAULT ''::text NOT NULL,
    replica text DEFAULT ''::text NOT NULL,
    disconnected_at timestamp with time zone,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    config_status text DEFAULT 'UNSET'::text NOT NULL
);


--
-- Name: api_tokens; Type: TABLE; Schema: steward_v6; Owner: -
--

CREATE TABLE steward_v6.api_tokens (
    id text NOT NULL,
    hash bytea NOT NULL,
    created_at timestamp with time zone NOT NULL,
    doc jsonb NOT NULL
);


--
-- Name: assignments; Type: TABLE; Schema: steward_v6; Owner: -
--

CREATE TABLE steward_v6.assignments (
    name text NOT NULL COLLATE pg_catalog."C",
    config_name text NOT NULL,
    version integer DEFAULT 0 NOT NULL,
    selector text DEFAULT ''::text NOT NULL,
    agent_id text,
    priority integer DEFAULT 0 NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL
);


--
-- Name: audit_log; Type: TABLE; Schema: steward_v6; Owner: -
--

CREATE TABLE steward_v6.audit_log (
    id bigint NOT NULL,
    "time" timestamp with time zone NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    target text NOT NULL,
    details jsonb
);


--
-- Name: audit_log_id_seq; Type: SEQUENCE; Schema: steward_v6; Owner: -
--

CREATE SEQUENCE steward_v6.audit_log_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: audit_log_id_seq; Type: SEQUENCE OWNED BY; Schema: steward_v6; Owner: -
--

ALTER SEQUENCE steward_v6.audit_log_id_seq OWNED BY steward_v6.audit_log.id;


--
-- Name: configs; Type: TABLE; Schema: steward_v6; Owner: -
--

CREATE TABLE steward_v6.configs (
    name text NOT NULL COLLATE pg_catalog."C",
    version integer NOT NULL,
    hash bytea NOT NULL,
    files json NOT NULL,
    comment text DEFAULT ''::text NOT NULL,
    author text DEFAULT ''::text NOT NULL,
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT configs_version_check CHECK ((version > 0))
);


--
-- Name: connection_settings; Type: TABLE; Schema: steward_v6; Owner: -
--

CREATE TABLE steward_v6.connection_settings (
    name text NOT NULL,
    doc jsonb NOT NULL
);


--
-- Name: enrollment_tokens; Type: TABLE; Schema: steward_v6; Owner: -
--

CREATE TABLE steward_v6.enrollment_tokens (
    id text NOT NULL,
    hash bytea NOT NULL,
    created_at timestamp with time zone NOT NULL,
    doc jsonb NOT NULL
);


--
-- Name: events; Type: TABLE; Schema: steward_v6; Owner: -
--

CREATE TABLE steward_v6.events (
    id bigint NOT NULL,
    type text NOT NULL,
    agent_id text NOT NULL,
    message text DEFAULT ''::text NOT NULL,
    details json,
    "time" timestamp with time zone NOT NULL
);


--
-- Name: events_id_seq; Type: SEQUENCE; Schema: steward_v6; Owner: -
--

ALTER TABLE steward_v6.events ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME steward_v6.events_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: package_assignment_items; Type: TABLE; Schema: steward_v6; Owner: -
--

CREATE TABLE steward_v6.package_assignment_items (
    assignment text NOT NULL,
    package text NOT NULL,
    version text NOT NULL
);


--
-- Name: package_assignments; Type: TABLE; Schema: steward_v6; Owner: -
--

CREATE TABLE steward_v6.package_assignments (
    name text NOT NULL,
    doc jsonb NOT NULL,
    created_at timestamp with time zone NOT NULL
);


--
-- Name: package_blob_chunks; Type: TABLE; Schema: steward_v6; Owner: -
--

CREATE TABLE steward_v6.package_blob_chunks (
    hash bytea NOT NULL,
    seq integer NOT NULL,
    data bytea NOT NULL
);


--
-- Name: package_blobs; Type: TABLE; Schema: steward_v6; Owner: -
--

CREATE TABLE steward_v6.package_blobs (
    hash bytea NOT NULL,
    size bigint NOT NULL
);


--
-- Name: package_signing_key; Type: TABLE; Schema: steward_v6; Owner: -
--

CREATE TABLE steward_v6.package_signing_key (
    id integer NOT NULL,
    private_key bytea NOT NULL,
    CONSTRAINT package_signing_key_id_check CHECK ((id = 1))
);


--
-- Name: packages; Type: TABLE; Schema: steward_v6; Owner: -
--

CREATE TABLE steward_v6.packages (
    name text NOT NULL,
    version text NOT NULL,
    hash bytea NOT NULL,
    doc jsonb NOT NULL,
    created_at timestamp with time zone NOT NULL
);


--
-- Name: replicas; Type: TABLE; Schema: steward_v6; Owner: -
--

CREATE TABLE steward_v6.replicas (
    name text NOT NULL,
    seen_at timestamp with time zone NOT NULL
);


--
-- Name: rollouts; Type: TABLE; Schema: steward_v6; Owner: -
--

CREATE TABLE steward_v6.rollouts (
    name text NOT NULL,
    assignment text NOT NULL,
    revision integer NOT NULL,
    doc jsonb NOT NULL,
    updated_at timestamp with time zone NOT NULL
);


--
-- Name: schema_migrations; Type: TABLE; Schema: steward_v6; Owner: -
--

CREATE TABLE steward_v6.schema_migrations (
    version integer NOT NULL,
    applied_at timestamp with time zone NOT NULL
);


--
-- Name: secrets; Type: TABLE; Schema: steward_v6; Owner: -
--

CREATE TABLE steward_v6.secrets (
    name text NOT NULL,
    value bytea NOT NULL
);


--
-- Name: audit_log id; Type: DEFAULT; Schema: steward_v6; Owner: -
--

ALTER TABLE ONLY steward_v6.audit_log ALTER COLUMN id SET DEFAULT nextval('steward_v6.audit_log_id_seq'::regclass);


--
-- Data for Name: agent_certificates; Type: TABLE DATA; Schema: steward_v6; Owner: -
--

INSERT INTO steward_v6.agent_certificates VALUES ('ab01', '0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b', '2026-11-30 12:00:00.123456+00', '{"serial": "ab01", "revoked": false, "agent_id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "not_after": "0001-01-01T00:00:00Z", "created_at": "2026-11-30T12:00:00.123456Z", "not_before": "0001-01-01T00:00:00Z"}');


--
-- Data for Name: agent_seen; Type: TABLE DATA; Schema: steward_v6; Owner: -
--

INSERT INTO steward_v6.agent_seen VALUES ('0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b', '2026-11-30 12:01:00.123456+00');


--
-- Data for Name: agents; Type: TABLE DATA; Schema: steward_v6; Owner: -
--

INSERT INTO steward_v6.agents VALUES ('0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b', '{"description":{"identifying":[{"k":"service.name","v":{"s":"otelcol"}},{"k":"service.version","v":{"s":"0.120.0"}}]},"capabilities":0,"health":{"healthy":true,"start_time":"2026-11-30T12:00:00.123456Z","status":"StatusOK"},"remote_config_status":{"last_remote_config_hash":"AQI=","status":"APPLIED"},"labels":{"env":"prod"},"sequence_num":0,"connected_at":"2026-11-30T12:00:00.123456Z"}', true, true, 'otelcol', '', '0.120.0', '0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5botelcol0.120.0', 'r1', NULL, '2026-11-30 12:00:00.123456+00', '2026-11-30 12:00:00.123456+00', 'APPLIED');


--
-- Data for Name: api_tokens; Type: TABLE DATA; Schema: steward_v6; Owner: -
--

INSERT INTO steward_v6.api_tokens VALUES ('tok', '\x746f6b656e2d68617368', '2026-11-30 12:00:00.123456+00', '{"id": "tok", "name": "", "role": "", "created_at": "2026-11-30T12:00:00.123456Z"}');


--
-- Data for Name: assignments; Type: TABLE DATA; Schema: steward_v6; Owner: -
--

INSERT INTO steward_v6.assignments VALUES ('prod', 'base', 0, 'env=prod', NULL, 1, '2026-12-06 17:40:40.299177+00', '2026-12-06 17:40:40.299177+00');


--
-- Data for Name: audit_log; Type: TABLE DATA; Schema: steward_v6; Owner: -
--

INSERT INTO steward_v6.audit_log VALUES (1, '2026-11-30 12:00:00.123456+00', 'ann', 'config.put', 'base', NULL);


--
-- Data for Name: configs; Type: TABLE DATA; Schema: steward_v6; Owner: -
--

INSERT INTO steward_v6.configs VALUES ('base', 1, '\x43c83db4f565c0fe0ff21ec07b5f558464dc8b0c8577150f6d34c9f810be45f8', '{"":{"body":"receivers: {}\n","content_type":"text/yaml"}}', '', 'ann', '2026-11-30 12:00:00.123456+00');


--
-- Data for Name: connection_settings; Type: TABLE DATA; Schema: steward_v6; Owner: -
--



--
-- Data for Name: enrollment_tokens; Type: TABLE DATA; Schema: steward_v6; Owner: -
--

INSERT INTO steward_v6.enrollment_tokens VALUES ('enr', '\x656e726f6c6c2d68617368', '2026-11-30 12:00:00.123456+00', '{"id": "enr", "name": "", "uses": 0, "created_at": "2026-11-30T12:00:00.123456Z"}');


--
-- Data for Name: events; Type: TABLE DATA; Schema: steward_v6; Owner: -
--

INSERT INTO steward_v6.events OVERRIDING SYSTEM VALUE VALUES (1, 'connected', '0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b', 'hello', NULL, '2026-11-30 12:00:00.123456+00');


--
-- Data for Name: package_assignment_items; Type: TABLE DATA; Schema: steward_v6; Owner: -
--

INSERT INTO steward_v6.package_assignment_items VALUES ('pa', 'otelcol', '1.0.0');


--
-- Data for Name: package_assignments; Type: TABLE DATA; Schema: steward_v6; Owner: -
--

INSERT INTO steward_v6.package_assignments VALUES ('pa', '{"name": "pa", "packages": [{"name": "otelcol", "version": "1.0.0"}], "created_at": "2026-11-30T12:00:00.123456Z", "updated_at": "2026-11-30T12:00:00.123456Z"}', '2026-11-30 12:00:00.123456+00');


--
-- Data for Name: package_blob_chunks; Type: TABLE DATA; Schema: steward_v6; Owner: -
--



--
-- Data for Name: package_blobs; Type: TABLE DATA; Schema: steward_v6; Owner: -
--



--
-- Data for Name: package_signing_key; Type: TABLE DATA; Schema: steward_v6; Owner: -
--

INSERT INTO steward_v6.package_signing_key VALUES (1, '\xd4277754363b67f127e714a88faaebe8a4aa48c46c18ab9d5f2173628d9c9085a471110f5346789fb90197f8f6ad0a14311549202059934b38cee0bf6bdf483b');


--
-- Data for Name: packages; Type: TABLE DATA; Schema: steward_v6; Owner: -
--

INSERT INTO steward_v6.packages VALUES ('otelcol', '1.0.0', '\x0000000000000000000000000000000000000000000000000000000000000000', '{"hash": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "name": "otelcol", "size": 0, "type": "", "version": "1.0.0", "signature": null, "signed_by": "", "created_at": "2026-11-30T12:00:00.123456Z"}', '2026-11-30 12:00:00.123456+00');


--
-- Data for Name: replicas; Type: TABLE DATA; Schema: steward_v6; Owner: -
--

INSERT INTO steward_v6.replicas VALUES ('r1', '2026-11-30 12:00:00.123456+00');


--
-- Data for Name: rollouts; Type: TABLE DATA; Schema: steward_v6; Owner: -
--

INSERT INTO steward_v6.rollouts VALUES ('ro', 'prod', 1, '{"name": "ro", "stage": 0, "state": "", "stages": null, "revision": 1, "assignment": "prod", "to_version": 0, "updated_at": "2026-11-30T12:00:00.123456Z", "from_version": 0, "max_failure_ratio": 0}', '2026-11-30 12:00:00.123456+00');


--
-- Data for Name: schema_migrations; Type: TABLE DATA; Schema: steward_v6; Owner: -
--

INSERT INTO steward_v6.schema_migrations VALUES (1, '2026-12-06 17:40:40.090739+00');
INSERT INTO steward_v6.schema_migrations VALUES (2, '2026-12-06 17:40:40.17933+00');
INSERT INTO steward_v6.schema_migrations VALUES (3, '2026-12-06 17:40:40.195307+00');
INSERT INTO steward_v6.schema_migrations VALUES (4, '2026-12-06 17:40:40.203215+00');
INSERT INTO steward_v6.schema_migrations VALUES (5, '2026-12-06 17:40:40.229101+00');
INSERT INTO steward_v6.schema_migrations VALUES (6, '2026-12-06 17:40:40.272514+00');


--
-- Data for Name: secrets; Type: TABLE DATA; Schema: steward_v6; Owner: -
--

INSERT INTO steward_v6.secrets VALUES ('ca', '\x736563726574');


--
-- Name: audit_log_id_seq; Type: SEQUENCE SET; Schema: steward_v6; Owner: -
--

SELECT pg_catalog.setval('steward_v6.audit_log_id_seq', 1, true);


--
-- Name: events_id_seq; Type: SEQUENCE SET; Schema: steward_v6; Owner: -
--

SELECT pg_catalog.setval('steward_v6.events_id_seq', 1, true);


--
-- Name: agent_certificates agent_certificates_pkey; Type: CONSTRAINT; Schema: steward_v6; Owner: -
--

ALTER TABLE ONLY steward_v6.agent_certificates
    ADD CONSTRAINT agent_certificates_pkey PRIMARY KEY (serial);


--
-- Name: agent_seen agent_seen_pkey; Type: CONSTRAINT; Schema: steward_v6; Owner: -
--

ALTER TABLE ONLY steward_v6.agent_seen
    ADD CONSTRAINT agent_seen_pkey PRIMARY KEY (id);


--
-- Name: agents agents_pkey; Type: CONSTRAINT; Schema: steward_v6; Owner: -
--

ALTER TABLE ONLY steward_v6.agents
    ADD CONSTRAINT agents_pkey PRIMARY KEY (id);


--
-- Name: api_tokens api_tokens_hash_key; Type: CONSTRAINT; Schema: steward_v6; Owner: -
--

ALTER TABLE ONLY steward_v6.api_tokens
    ADD CONSTRAINT api_tokens_hash_key UNIQUE (hash);


--
-- Name: api_tokens api_tokens_pkey; Type: CONSTRAINT; Schema: steward_v6; Owner: -
--

ALTER TABLE ONLY steward_v6.api_tokens
    ADD CONSTRAINT api_tokens_pkey PRIMARY KEY (id);


--
-- Name: assignments assignments_pkey; Type: CONSTRAINT; Schema: steward_v6; Owner: -
--

ALTER TABLE ONLY steward_v6.assignments
    ADD CONSTRAINT assignments_pkey PRIMARY KEY (name);


--
-- Name: audit_log audit_log_pkey; Type: CONSTRAINT; Schema: steward_v6; Owner: -
--

ALTER TABLE ONLY steward_v6.audit_log
    ADD CONSTRAINT audit_log_pkey PRIMARY KEY (id);


--
-- Name: configs configs_pkey; Type: CONSTRAINT; Schema: steward_v6; Owner: -
--

ALTER TABLE ONLY steward_v6.configs
    ADD CONSTRAINT configs_pkey PRIMARY KEY (name, version);


--
-- Name: connection_settings connection_settings_pkey; Type: CONSTRAINT; Schema: steward_v6; Owner: -
--

ALTER TABLE ONLY steward_v6.connection_settings
    ADD CONSTRAINT connection_settings_pkey PRIMARY KEY (name);


--
-- Name: enrollment_tokens enrollment_tokens_hash_key; Type: CONSTRAINT; Schema: steward_v6; Owner: -
--

ALTER TABLE ONLY steward_v6.enrollment_tokens
    ADD CONSTRAINT enrollment_tokens_hash_key UNIQUE (hash);


--
-- Name: enrollment_tokens enrollment_tokens_pkey; Type: CONSTRAINT; Schema: steward_v6; Owner: -
--

ALTER TABLE ONLY steward_v6.enrollment_tokens
    ADD CONSTRAINT enrollment_tokens_pkey PRIMARY KEY (id);


--
-- Name: events events_pkey; Type: CONSTRAINT; Schema: steward_v6; Owner: -
--

ALTER TABLE ONLY steward_v6.events
    ADD CONSTRAINT events_pkey PRIMARY KEY (id);


--
-- Name: package_assignment_items package_assignment_items_pkey; Type: CONSTRAINT; Schema: steward_v6; Owner: -
--

ALTER TABLE ONLY steward_v6.package_assignment_items
    ADD CONSTRAINT package_assignment_items_pkey PRIMARY KEY (assignment, package);


--
-- Name: package_assignments package_assignments_pkey; Type: CONSTRAINT; Schema: steward_v6; Owner: -
--

ALTER TABLE ONLY steward_v6.package_assignments
    ADD CONSTRAINT package_assignments_pkey PRIMARY KEY (name);


--
-- Name: package_blob_chunks package_blob_chunks_pkey; Type: CONSTRAINT; Schema: steward_v6; Owner: -
--

ALTER TABLE ONLY steward_v6.package_blob_chunks
    ADD CONSTRAINT package_blob_chunks_pkey PRIMARY KEY (hash, seq);


--
-- Name: package_blobs package_blobs_pkey; Type: CONSTRAINT; Schema: steward_v6; Owner: -
--

ALTER TABLE ONLY steward_v6.package_blobs
    ADD CONSTRAINT package_blobs_pkey PRIMARY KEY (hash);


--
-- Name: package_signing_key package_signing_key_pkey; Type: CONSTRAINT; Schema: steward_v6; Owner: -
--

ALTER TABLE ONLY steward_v6.package_signing_key
    ADD CONSTRAINT package_signing_key_pkey PRIMARY KEY (id);


--
-- Name: packages packages_pkey; Type: CONSTRAINT; Schema: steward_v6; Owner: -
--

ALTER TABLE ONLY steward_v6.packages
    ADD CONSTRAINT packages_pkey PRIMARY KEY (name, version);


--
-- Name: replicas replicas_pkey; Type: CONSTRAINT; Schema: steward_v6; Owner: -
--

ALTER TABLE ONLY steward_v6.replicas
    ADD CONSTRAINT replicas_pkey PRIMARY KEY (name);


--
-- Name: rollouts rollouts_pkey; Type: CONSTRAINT; Schema: steward_v6; Owner: -
--

ALTER TABLE ONLY steward_v6.rollouts
    ADD CONSTRAINT rollouts_pkey PRIMARY KEY (name);


--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: steward_v6; Owner: -
--

ALTER TABLE ONLY steward_v6.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);


--
-- Name: secrets secrets_pkey; Type: CONSTRAINT; Schema: steward_v6; Owner: -
--

ALTER TABLE ONLY steward_v6.secrets
    ADD CONSTRAINT secrets_pkey PRIMARY KEY (name);


--
-- Name: agent_certificates_agent; Type: INDEX; Schema: steward_v6; Owner: -
--

CREATE INDEX agent_certificates_agent ON steward_v6.agent_certificates USING btree (agent_id, created_at);


--
-- Name: agents_host_name; Type: INDEX; Schema: steward_v6; Owner: -
--

CREATE INDEX agents_host_name ON steward_v6.agents USING btree (host_name);


--
-- Name: agents_online; Type: INDEX; Schema: steward_v6; Owner: -
--

CREATE INDEX agents_online ON steward_v6.agents USING btree (online, replica);


--
-- Name: agents_service_name; Type: INDEX; Schema: steward_v6; Owner: -
--

CREATE INDEX agents_service_name ON steward_v6.agents USING btree (service_name);


--
-- Name: assignments_config; Type: INDEX; Schema: steward_v6; Owner: -
--

CREATE INDEX assignments_config ON steward_v6.assignments USING btree (config_name);


--
-- Name: audit_log_time; Type: INDEX; Schema: steward_v6; Owner: -
--

CREATE INDEX audit_log_time ON steward_v6.audit_log USING btree ("time");


--
-- Name: events_agent_time; Type: INDEX; Schema: steward_v6; Owner: -
--

CREATE INDEX events_agent_time ON steward_v6.events USING btree (agent_id, "time");


--
-- Name: events_time; Type: INDEX; Schema: steward_v6; Owner: -
--

CREATE INDEX events_time ON steward_v6.events USING btree ("time");


--
-- Name: package_assignment_items_pkg; Type: INDEX; Schema: steward_v6; Owner: -
--

CREATE INDEX package_assignment_items_pkg ON steward_v6.package_assignment_items USING btree (package, version);


--
-- Name: packages_hash; Type: INDEX; Schema: steward_v6; Owner: -
--

CREATE INDEX packages_hash ON steward_v6.packages USING btree (hash);


--
-- Name: rollouts_assignment; Type: INDEX; Schema: steward_v6; Owner: -
--

CREATE INDEX rollouts_assignment ON steward_v6.rollouts USING btree (assignment);


--
-- Name: agent_seen agent_seen_id_fkey; Type: FK CONSTRAINT; Schema: steward_v6; Owner: -
--

ALTER TABLE ONLY steward_v6.agent_seen
    ADD CONSTRAINT agent_seen_id_fkey FOREIGN KEY (id) REFERENCES steward_v6.agents(id) ON DELETE CASCADE;


--
-- Name: package_assignment_items package_assignment_items_assignment_fkey; Type: FK CONSTRAINT; Schema: steward_v6; Owner: -
--

ALTER TABLE ONLY steward_v6.package_assignment_items
    ADD CONSTRAINT package_assignment_items_assignment_fkey FOREIGN KEY (assignment) REFERENCES steward_v6.package_assignments(name) ON DELETE CASCADE;


--
-- Name: package_assignment_items package_assignment_items_package_version_fkey; Type: FK CONSTRAINT; Schema: steward_v6; Owner: -
--

ALTER TABLE ONLY steward_v6.package_assignment_items
    ADD CONSTRAINT package_assignment_items_package_version_fkey FOREIGN KEY (package, version) REFERENCES steward_v6.packages(name, version);


--
-- Name: package_blob_chunks package_blob_chunks_hash_fkey; Type: FK CONSTRAINT; Schema: steward_v6; Owner: -
--

ALTER TABLE ONLY steward_v6.package_blob_chunks
    ADD CONSTRAINT package_blob_chunks_hash_fkey FOREIGN KEY (hash) REFERENCES steward_v6.package_blobs(hash) ON DELETE CASCADE;


--
-- PostgreSQL database dump complete
--

\unrestrict cAsH9oNtQXNTVyGI6eD2jysENXgcYLxiLKaYlEeOLUD9Hn53Mwfwvkl2BhMQ6m8

