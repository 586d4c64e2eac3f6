-- The key lookup in mp_thread_message filtered "key = ANY(p_keys)" row by row under a generic
-- plan made while conversation_keys was empty, so every call scanned all of the account's keys
-- (0.06 ms per call at first, 0.56 ms after 5,000 messages). Joining unnest(p_keys) keeps both
-- index columns in the lookup whatever plan is cached.
CREATE OR REPLACE FUNCTION mp_thread_message(p_message bigint, p_keys text[], p_subject_days int DEFAULT 0)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	v_account bigint;
	v_provider text;
	v_subject text;
	v_reply boolean;
	v_at timestamptz;
	v_target bigint;
	v_others bigint[];
BEGIN
	SELECT account_id, provider, base_subject, is_reply, coalesce(sent_at, received_at)
	  INTO v_account, v_provider, v_subject, v_reply, v_at FROM messages WHERE id = p_message;
	SELECT array_agg(DISTINCT c.conversation_id) INTO v_others
	  FROM unnest(p_keys) AS k JOIN conversation_keys c ON c.account_id = v_account AND c.key = k;
	IF p_subject_days > 0 AND coalesce(v_subject, '') <> '' AND v_at IS NOT NULL THEN
		SELECT array_agg(DISTINCT c) INTO v_others FROM (
			SELECT unnest(coalesce(v_others, '{}')) AS c
			UNION
			SELECT m.conversation_id FROM messages m
			 WHERE m.account_id = v_account AND m.base_subject = v_subject
			   AND m.id <> p_message AND m.conversation_id IS NOT NULL
			   AND (v_reply OR m.is_reply)
			   AND coalesce(m.sent_at, m.received_at)
			       BETWEEN v_at - make_interval(days => p_subject_days)
			           AND v_at + make_interval(days => p_subject_days)) s;
	END IF;
	SELECT min(c) INTO v_target FROM unnest(v_others) AS c;
	IF v_target IS NULL THEN
		INSERT INTO conversations (account_id, provider) VALUES (v_account, v_provider)
		RETURNING id INTO v_target;
	ELSIF cardinality(v_others) > 1 THEN
		v_others := array_remove(v_others, v_target);
		UPDATE messages SET conversation_id = v_target WHERE conversation_id = ANY(v_others);
		UPDATE conversation_keys SET conversation_id = v_target
		 WHERE account_id = v_account AND conversation_id = ANY(v_others);
		DELETE FROM conversations WHERE id = ANY(v_others);
	END IF;
	INSERT INTO conversation_keys (account_id, key, conversation_id)
	SELECT v_account, k, v_target FROM unnest(p_keys) AS k WHERE k IS NOT NULL AND k <> ''
	ON CONFLICT (account_id, key) DO NOTHING;
	UPDATE messages SET conversation_id = v_target WHERE id = p_message;
	RETURN v_target;
END $$;
