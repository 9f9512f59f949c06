UPDATE agents SET attrs = coalesce((
	SELECT group_concat(char(31) || json_extract(e.value, '$.k') || char(30) ||
		coalesce(json_extract(e.value, '$.v.s'), json_extract(e.value, '$.v.i'), json_extract(e.value, '$.v.u'),
			json_extract(e.value, '$.v.d'), CASE json_type(e.value, '$.v.b') WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' END,
			CASE json_type(e.value, '$.v') WHEN 'null' THEN '' END), '')
	FROM json_each(CAST(agents.doc AS TEXT), '$.description') l, json_each(l.value) e
	WHERE l.key IN ('identifying', 'non_identifying')) || char(31), '');
