-- Past one Postgres (issue 11): every key of a per-account table leads with account_id, so the
-- schema runs unchanged with those tables under PARTITION BY HASH (account_id), or distributed
-- by account_id on Citus (create_distributed_table), whose rules are the same: a primary key or
-- unique constraint must contain the partition column, and a foreign key between two
-- distributed tables must include it. Ids stay unique per table (their sequences), but only
-- (account_id, id) can be declared unique.

-- The two tables that had no account_id take it from their parent row.
ALTER TABLE message_locations ADD COLUMN account_id bigint;
UPDATE message_locations l SET account_id = m.account_id FROM messages m WHERE m.id = l.message_id;
ALTER TABLE message_locations ALTER COLUMN account_id SET NOT NULL;
ALTER TABLE sync_run_folders ADD COLUMN account_id bigint;
UPDATE sync_run_folders s SET account_id = r.account_id FROM sync_runs r WHERE r.run_id = s.run_id;
ALTER TABLE sync_run_folders ALTER COLUMN account_id SET NOT NULL;

-- Foreign keys on a lone id go first: they depend on the keys replaced below.
ALTER TABLE messages DROP CONSTRAINT messages_conversation_id_fkey;
ALTER TABLE message_locations DROP CONSTRAINT message_locations_message_id_fkey,
	DROP CONSTRAINT message_locations_folder_id_fkey;
ALTER TABLE sync_run_folders DROP CONSTRAINT sync_run_folders_run_id_fkey,
	DROP CONSTRAINT sync_run_folders_folder_id_fkey;
ALTER TABLE conversation_keys DROP CONSTRAINT conversation_keys_conversation_id_fkey;

ALTER TABLE email_folders DROP CONSTRAINT email_folders_pkey, ADD PRIMARY KEY (account_id, id);
ALTER TABLE conversations DROP CONSTRAINT conversations_pkey, ADD PRIMARY KEY (account_id, id);
ALTER TABLE messages DROP CONSTRAINT messages_pkey, ADD PRIMARY KEY (account_id, id);
ALTER TABLE contacts DROP CONSTRAINT contacts_pkey, ADD PRIMARY KEY (account_id, id);
ALTER TABLE sync_runs DROP CONSTRAINT sync_runs_pkey, ADD PRIMARY KEY (account_id, run_id);
ALTER TABLE message_locations DROP CONSTRAINT message_locations_pkey,
	ADD PRIMARY KEY (account_id, id),
	DROP CONSTRAINT message_locations_folder_id_uidvalidity_uid_key,
	ADD CONSTRAINT message_locations_place_key UNIQUE (account_id, folder_id, uidvalidity, uid);
ALTER TABLE sync_run_folders DROP CONSTRAINT sync_run_folders_pkey,
	ADD PRIMARY KEY (account_id, run_id, folder_id);

-- Co-located foreign keys. Deleting a conversation clears only messages.conversation_id (a
-- PostgreSQL 15 column list): account_id is part of the key and stays.
ALTER TABLE messages ADD CONSTRAINT messages_conversation_fkey
	FOREIGN KEY (account_id, conversation_id) REFERENCES conversations (account_id, id)
	ON DELETE SET NULL (conversation_id);
ALTER TABLE message_locations ADD CONSTRAINT message_locations_message_fkey
	FOREIGN KEY (account_id, message_id) REFERENCES messages (account_id, id) ON DELETE CASCADE;
ALTER TABLE message_locations ADD CONSTRAINT message_locations_folder_fkey
	FOREIGN KEY (account_id, folder_id) REFERENCES email_folders (account_id, id) ON DELETE CASCADE;
ALTER TABLE sync_run_folders ADD CONSTRAINT sync_run_folders_run_fkey
	FOREIGN KEY (account_id, run_id) REFERENCES sync_runs (account_id, run_id) ON DELETE CASCADE;
ALTER TABLE sync_run_folders ADD CONSTRAINT sync_run_folders_folder_fkey
	FOREIGN KEY (account_id, folder_id) REFERENCES email_folders (account_id, id) ON DELETE CASCADE;
ALTER TABLE conversation_keys ADD CONSTRAINT conversation_keys_conversation_fkey
	FOREIGN KEY (account_id, conversation_id) REFERENCES conversations (account_id, id)
	ON DELETE CASCADE;

-- Lookups of a message's locations, a conversation's messages and keys, and a run's or a
-- folder's queued jobs name the account too, which prunes to one partition (or shard).
DROP INDEX messages_conversation;
CREATE INDEX messages_conversation ON messages (account_id, conversation_id);
DROP INDEX message_locations_message;
CREATE INDEX message_locations_message ON message_locations (account_id, message_id);
DROP INDEX conversation_keys_conversation;
CREATE INDEX conversation_keys_conversation ON conversation_keys (account_id, conversation_id);
DROP INDEX sync_run_folders_queued;
CREATE INDEX sync_run_folders_queued ON sync_run_folders (account_id, run_id) WHERE status = 'queued';
DROP INDEX sync_run_folders_folder_queued;
CREATE INDEX sync_run_folders_folder_queued ON sync_run_folders (account_id, folder_id, run_id)
	WHERE status = 'queued';
-- A run, a folder job or a folder named by its id alone (`sync --wait`, status, the
-- scheduler's sweeps, a folder job's bookkeeping): one probe per partition instead of a scan.
-- These tables hold a row per run or folder, so the extra index is cheap. Not unique: the
-- sequences are.
CREATE INDEX sync_runs_run_id ON sync_runs (run_id);
CREATE INDEX sync_run_folders_run ON sync_run_folders (run_id, folder_id);
CREATE INDEX email_folders_id ON email_folders (id);
-- Message and conversation ids are the public handle (`mailpipe show ID`, the MCP tools, users'
-- own queries of DESIGN.md's tables): found by id alone they stay one index probe (per
-- partition). Everything the pipeline itself runs names the account.
CREATE INDEX messages_id ON messages (id);
CREATE INDEX conversations_id ON conversations (id);

-- Merges touch only the account's rows.
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
		UPDATE messages SET conversation_id = v_target
		 WHERE account_id = p_account AND conversation_id = ANY(v_others);
		UPDATE conversation_keys SET conversation_id = v_target
		 WHERE account_id = p_account AND conversation_id = ANY(v_others);
		DELETE FROM conversations WHERE account_id = p_account AND id = ANY(v_others);
	END IF;
	INSERT INTO conversation_keys (account_id, key, conversation_id)
	SELECT p_account, k, v_target FROM unnest(p_keys) AS k WHERE k IS NOT NULL AND k <> ''
	ON CONFLICT (account_id, key) DO NOTHING;
	RETURN v_target;
END $$;

-- `mailpipe db migrate --partitions N`: the per-account tables (those not partitioned yet)
-- rebuilt as PARTITION BY HASH (account_id) with N partitions, rows, keys, indexes, foreign
-- keys and sequences kept, in one transaction. Returns how many tables it converted. The keys
-- above are what make this possible: PostgreSQL refuses a unique index without account_id.
CREATE FUNCTION mp_partition_by_account(p_parts int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
	v_all text[] := ARRAY['email_folders', 'conversations', 'messages', 'message_locations',
			      'contacts', 'sync_runs', 'sync_run_folders', 'conversation_keys'];
	v_todo text[];
	v_fks text[] := '{}';
	v_defs text[];
	v_cols text;
	v_seq text;
	r record;
	t text;
	s text;
BEGIN
	IF p_parts IS NULL OR p_parts < 1 OR p_parts > 1024 THEN
		RAISE EXCEPTION 'partitions must be 1 to 1024, not %', p_parts;
	END IF;
	SELECT array_agg(c.relname::text ORDER BY array_position(v_all, c.relname::text)) INTO v_todo
	  FROM pg_class c
	 WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'
	   AND c.relname = ANY(v_all);
	IF v_todo IS NULL THEN
		RETURN 0;
	END IF;
	-- Foreign keys that touch a table being rebuilt are dropped and made again at the end.
	FOR r IN SELECT conname, conrelid::regclass::text AS tbl, pg_get_constraintdef(oid) AS def
		   FROM pg_constraint
		  WHERE contype = 'f' AND connamespace = current_schema()::regnamespace
		    AND (conrelid::regclass::text = ANY(v_todo) OR confrelid::regclass::text = ANY(v_todo))
	LOOP
		v_fks := v_fks || format('ALTER TABLE %s ADD CONSTRAINT %I %s', r.tbl, r.conname, r.def);
		EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.tbl, r.conname);
	END LOOP;
	FOREACH t IN ARRAY v_todo LOOP
		-- Keys and indexes as they are written now, made again on the partitioned table.
		SELECT array_agg(d ORDER BY k) INTO v_defs FROM (
			SELECT 0 AS k, format('ALTER TABLE %I ADD CONSTRAINT %I %s', t, conname,
					      pg_get_constraintdef(oid)) AS d
			  FROM pg_constraint WHERE conrelid = t::regclass AND contype IN ('p', 'u')
			UNION ALL
			SELECT 1, pg_get_indexdef(i.indexrelid) FROM pg_index i
			 WHERE i.indrelid = t::regclass AND NOT EXISTS (SELECT 1 FROM pg_constraint c
				WHERE c.conindid = i.indexrelid AND c.conrelid = t::regclass)) s;
		EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
			       'INCLUDING GENERATED INCLUDING IDENTITY INCLUDING STORAGE '
			       'INCLUDING COMPRESSION) PARTITION BY HASH (account_id)', t || '_hashed', t);
		FOR i IN 0 .. p_parts - 1 LOOP
			EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES WITH (MODULUS %s, '
				       'REMAINDER %s)', t || '_p' || i, t || '_hashed', p_parts, i);
		END LOOP;
		SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO v_cols
		  FROM pg_attribute
		 WHERE attrelid = t::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = '';
		EXECUTE format('INSERT INTO %I (%s) SELECT %s FROM %I', t || '_hashed', v_cols, v_cols, t);
		-- The id sequences follow their column, so dropping the old table keeps them.
		FOR r IN SELECT attname FROM pg_attribute
			  WHERE attrelid = t::regclass AND attnum > 0 AND NOT attisdropped LOOP
			v_seq := pg_get_serial_sequence(quote_ident(t), r.attname);
			IF v_seq IS NOT NULL THEN
				EXECUTE format('ALTER SEQUENCE %s OWNED BY %I.%I', v_seq, t || '_hashed',
					       r.attname);
			END IF;
		END LOOP;
		EXECUTE format('DROP TABLE %I', t);
		EXECUTE format('ALTER TABLE %I RENAME TO %I', t || '_hashed', t);
		FOREACH s IN ARRAY coalesce(v_defs, '{}') LOOP
			EXECUTE s;
		END LOOP;
	END LOOP;
	FOREACH s IN ARRAY v_fks LOOP
		EXECUTE s;
	END LOOP;
	RETURN cardinality(v_todo);
END $$;
