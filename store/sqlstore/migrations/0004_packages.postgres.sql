-- Package content in 1 MiB chunks (see postgres.DB.PutBlob), so that every
-- replica serves every package.
CREATE TABLE package_blobs (
	hash bytea PRIMARY KEY,
	size bigint NOT NULL
);
CREATE TABLE package_blob_chunks (
	hash bytea NOT NULL REFERENCES package_blobs(hash) ON DELETE CASCADE,
	seq  integer NOT NULL,
	data bytea NOT NULL,
	PRIMARY KEY (hash, seq)
);
