UPDATE agents SET health = CASE WHEN healthy THEN 'healthy' ELSE 'unhealthy' END
	WHERE online AND doc->'health' IS NOT NULL;
