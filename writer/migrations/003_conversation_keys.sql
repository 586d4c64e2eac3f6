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

-- Threads one message; the caller holds the account's advisory lock, which serialises the
-- merges of one account while other accounts proceed. Returns the conversation id.
CREATE FUNCTION mp_thread_message(p_message bigint, p_keys text[]) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	v_account bigint;
	v_provider text;
	v_target bigint;
	v_others bigint[];
BEGIN
	SELECT account_id, provider INTO v_account, v_provider FROM messages WHERE id = p_message;
	SELECT min(conversation_id), array_agg(DISTINCT conversation_id) INTO v_target, v_others
	  FROM conversation_keys WHERE account_id = v_account AND key = ANY(p_keys);
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
