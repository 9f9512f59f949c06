-- The attributes an agent reports, as one text column the agent list's
-- attr.KEY=VALUE filter matches by substring (see record.AttributeTerm):
-- char(31) key char(30) value for every attribute with a scalar value,
-- then char(31). Stored agents get it from their documents here (the
-- dialect's file); PutAgent keeps it current.
ALTER TABLE agents ADD COLUMN attrs text NOT NULL DEFAULT '';
