-- The reported remote config status as a column, for Summary.
ALTER TABLE agents ADD COLUMN config_status text NOT NULL DEFAULT 'UNSET';
