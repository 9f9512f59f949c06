UPDATE agents SET config_status = COALESCE(doc->'remote_config_status'->>'status', 'UNSET');
