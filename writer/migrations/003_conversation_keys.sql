-- Conversations as connected components of the reference graph (JWZ grouping): every
-- Message-ID a message has or names (References, In-Reply-To), present or not ("ghosts"),
-- and Gmail's thread id, is a key owned by one conversation. A message joins the conversations
-- of all its keys, merging them, so two replies to a missing root meet in one conversation and
-- the grouping does not depend on arrival order or batch boundaries.
CREATE TABLE conversation_keys (
	account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	key text NOT NULL,
	conversation_id bigint NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
	PRIMARY KEY (account_id, key)
);
CREATE INDEX conversation_keys_conversation ON conversation_keys (conversation_id);

-- Optional subject grouping (an account option, off by default): two messages with the same
-- base subject, dated within the account's window of each other, at least one of them a reply
-- or forward, share a conversation. The relation is symmetric, so merging over it stays
-- independent of arrival order.
CREATE INDEX messages_base_subject ON messages (account_id, base_subject)
	WHERE base_subject IS NOT NULL AND base_subject <> '';

-- Finds or makes the conversation of a message about to be inserted, merging the ones its keys
-- link, and records its keys. Runs before the row is written so that the row is inserted once
-- with its conversation_id (an UPDATE afterwards rewrote every message, its search vector and
-- its GIN entries). The caller holds the account's advisory lock, which serialises the merges
-- of one account while other accounts proceed. The lookup joins unnest(p_keys) so that both
-- primary-key columns are used.
CREATE FUNCTION mp_thread_keys(p_account bigint, p_keys text[], p_subject text,
			       p_reply boolean, p_at timestamptz, p_subject_days int)
RETURNS bigint LANGUAGE plpgsql AS $$
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
			 WHERE m.account_id = p_account AND m.base_subject = p_subject
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

-- A cached generic plan, made while conversation_keys was small, scanned the account's keys on
-- every call (1.4 s of a 5.5 s, 5,000-message writer bench); per-call plans use the key.
ALTER FUNCTION mp_thread_keys(bigint, text[], text, boolean, timestamptz, int)
	SET plan_cache_mode = force_custom_plan;

-- Messages threaded before this migration give their keys to the conversation they are in.
INSERT INTO conversation_keys (account_id, key, conversation_id)
SELECT DISTINCT ON (account_id, key) account_id, key, conversation_id
FROM (SELECT account_id, conversation_id,
	     unnest(ARRAY[message_id, in_reply_to] || "references") AS key
	FROM messages WHERE conversation_id IS NOT NULL) s
WHERE key IS NOT NULL AND key <> ''
ORDER BY account_id, key, conversation_id
ON CONFLICT DO NOTHING;

-- Threading no longer searches messages by what they reference; the GIN index cost every
-- insert for nothing.
DROP INDEX messages_references;
DROP INDEX messages_in_reply_to;
