UPDATE agents SET attrs = coalesce((
	SELECT string_agg(chr(31) || (e.kv->>'k') || chr(30) ||
		coalesce(e.kv->'v'->>'s', e.kv->'v'->>'i', e.kv->'v'->>'u', e.kv->'v'->>'d', e.kv->'v'->>'b',
			CASE json_typeof(e.kv->'v') WHEN 'null' THEN '' END), '')
	FROM json_each(agents.doc->'description') l, json_array_elements(l.value) e(kv)
	WHERE l.key IN ('identifying', 'non_identifying')) || chr(31), '');
