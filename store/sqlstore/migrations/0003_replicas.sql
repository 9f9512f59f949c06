-- Replica leases (see steward.ReplicaStore).
CREATE TABLE replicas (
	name    text PRIMARY KEY,
	seen_at {time} NOT NULL
);
