CREATE INDEX agents_attrs ON agents(attrs, id);
