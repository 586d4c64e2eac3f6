-- A btree entry holds at most 2,704 bytes, so a message whose Message-ID or base subject was
-- longer (spam, broken mailers) failed its insert and was not stored at all. Message-IDs are
-- only looked up by equality, which a hash index serves at any length. Subject grouping looks
-- up (account, base subject): the btree keeps a bounded prefix and the lookup also compares
-- the whole value. (Over-long keys and contact addresses the writer leaves out.)
DROP INDEX messages_account_message_id;
CREATE INDEX messages_message_id ON messages USING hash (message_id);

DROP INDEX messages_base_subject;
CREATE INDEX messages_base_subject ON messages (account_id, left(base_subject, 256))
	WHERE base_subject IS NOT NULL AND base_subject <> '';

CREATE OR REPLACE FUNCTION mp_thread_keys(p_account bigint, p_keys text[], p_subject text,
			       p_reply boolean, p_at timestamptz, p_subject_days int)
RETURNS bigint LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan AS $$
DECLARE
	v_target bigint;
	v_others bigint[];
BEGIN
	SELECT array_agg(DISTINCT c.conversation_id) INTO v_others
	  FROM unnest(p_keys) AS k JOIN conversation_keys c ON c.account_id = p_account AND c.key = k;
	IF p_subject_days > 0 AND coalesce(p_subject, '') <> '' AND p_at IS NOT NULL THEN
		SELECT array_agg(DISTINCT c) INTO v_others FROM (
			SELECT unnest(coalesce(v_others, '{}')) AS c
			UNION
			SELECT m.conversation_id FROM messages m
			 WHERE m.account_id = p_account AND left(m.base_subject, 256) = left(p_subject, 256)
			   AND m.base_subject = p_subject
			   AND m.conversation_id IS NOT NULL AND (p_reply OR m.is_reply)
			   AND coalesce(m.sent_at, m.received_at)
			       BETWEEN p_at - make_interval(days => p_subject_days)
			           AND p_at + make_interval(days => p_subject_days)) s;
	END IF;
	SELECT min(c) INTO v_target FROM unnest(v_others) AS c;
	IF v_target IS NULL THEN
		INSERT INTO conversations (account_id, provider)
		SELECT id, provider FROM accounts WHERE id = p_account RETURNING id INTO v_target;
	ELSIF cardinality(v_others) > 1 THEN
		v_others := array_remove(v_others, v_target);
		UPDATE messages SET conversation_id = v_target WHERE conversation_id = ANY(v_others);
		UPDATE conversation_keys SET conversation_id = v_target
		 WHERE account_id = p_account AND conversation_id = ANY(v_others);
		DELETE FROM conversations WHERE id = ANY(v_others);
	END IF;
	INSERT INTO conversation_keys (account_id, key, conversation_id)
	SELECT p_account, k, v_target FROM unnest(p_keys) AS k WHERE k IS NOT NULL AND k <> ''
	ON CONFLICT (account_id, key) DO NOTHING;
	RETURN v_target;
END $$;
