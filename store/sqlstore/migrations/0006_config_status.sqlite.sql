UPDATE agents SET config_status = COALESCE(json_extract(CAST(doc AS TEXT), '$.remote_config_status.status'), 'UNSET');
