-- People who sign in to the console (users.go). The password hash is a
-- column, never part of the document; SSO users are unique per issuer and
-- subject (NULL for local users, which UNIQUE lets repeat).
CREATE TABLE users (
	name          text PRIMARY KEY,
	password_hash text NOT NULL,
	issuer        text,
	subject       text,
	doc           {jsonb} NOT NULL,
	UNIQUE (issuer, subject)
);
