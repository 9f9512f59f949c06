UPDATE agents SET health = CASE WHEN healthy THEN 'healthy' ELSE 'unhealthy' END
	WHERE online AND json_type(CAST(doc AS TEXT), '$.health') IS NOT NULL;
