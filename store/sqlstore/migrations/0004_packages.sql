-- Packages (metadata; content is in a steward.BlobStore), package
-- assignments with one row per offered package (the foreign key keeps an
-- assigned version from being deleted), and the signing key.
CREATE TABLE packages (
	name       text NOT NULL,
	version    text NOT NULL,
	hash       {blob} NOT NULL,
	doc        {jsonb} NOT NULL,
	created_at {time} NOT NULL,
	PRIMARY KEY (name, version)
);
CREATE INDEX packages_hash ON packages(hash);
CREATE TABLE package_assignments (
	name       text PRIMARY KEY,
	doc        {jsonb} NOT NULL,
	created_at {time} NOT NULL
);
CREATE TABLE package_assignment_items (
	assignment text NOT NULL REFERENCES package_assignments(name) ON DELETE CASCADE,
	package    text NOT NULL,
	version    text NOT NULL,
	PRIMARY KEY (assignment, package),
	FOREIGN KEY (package, version) REFERENCES packages(name, version)
);
CREATE INDEX package_assignment_items_pkg ON package_assignment_items(package, version);
CREATE TABLE package_signing_key (
	id          integer PRIMARY KEY CHECK (id = 1),
	private_key {blob} NOT NULL
);
