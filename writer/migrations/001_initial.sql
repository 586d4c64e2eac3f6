-- The tables of DESIGN.md. Names are the contract with users' queries; extra columns serve
-- the pipeline (wire names, run bookkeeping).
CREATE TABLE accounts (
	id bigserial PRIMARY KEY,
	name text NOT NULL UNIQUE,
	provider text NOT NULL DEFAULT 'imap',
	host text NOT NULL,
	port int NOT NULL CHECK (port BETWEEN 1 AND 65535),
	tls text NOT NULL DEFAULT 'implicit' CHECK (tls IN ('implicit', 'starttls', 'none')),
	username text NOT NULL,
	auth text NOT NULL DEFAULT 'password' CHECK (auth IN ('password', 'xoauth2')),
	-- A reference (env:VAR or file:/path), never the secret itself (invariant 7).
	secret_ref text NOT NULL CHECK (secret_ref ~ '^(env|file):.+'),
	email text,
	sync_interval_s int NOT NULL DEFAULT 60 CHECK (sync_interval_s >= 0),
	initial_window_days int NOT NULL DEFAULT 30 CHECK (initial_window_days >= 0),
	folders text[] NOT NULL DEFAULT '{}',
	ca_file text,
	tls_verify boolean NOT NULL DEFAULT true,
	options jsonb NOT NULL DEFAULT '{}',
	state text NOT NULL DEFAULT 'active',
	last_error text,
	next_sync_at timestamptz NOT NULL DEFAULT now(),
	created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE email_folders (
	id bigserial PRIMARY KEY,
	account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	provider text NOT NULL,
	name text NOT NULL,
	wire_name text NOT NULL,
	delimiter text,
	special_use text,
	attributes text[] NOT NULL DEFAULT '{}',
	uidvalidity bigint,
	last_uid bigint NOT NULL DEFAULT 0,
	highest_modseq bigint,
	uidnext bigint,
	message_count int NOT NULL DEFAULT 0,
	unread_count int NOT NULL DEFAULT 0,
	last_synced_at timestamptz,
	last_error text,
	UNIQUE (account_id, name)
);
CREATE INDEX email_folders_provider ON email_folders (provider);

CREATE TABLE conversations (
	id bigserial PRIMARY KEY,
	account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	provider text NOT NULL,
	display_name text,
	subject text,
	message_count int NOT NULL DEFAULT 0,
	unread_count int NOT NULL DEFAULT 0,
	participants jsonb NOT NULL DEFAULT '[]',
	first_message_at timestamptz,
	last_message_at timestamptz
);
CREATE INDEX conversations_recent ON conversations (provider, last_message_at DESC);
CREATE INDEX conversations_account ON conversations (account_id, last_message_at DESC);

CREATE TABLE messages (
	id bigserial PRIMARY KEY,
	account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	provider text NOT NULL,
	message_id text,
	message_id_synthetic boolean NOT NULL DEFAULT false,
	content_sha256 text NOT NULL,
	subject text,
	from_name text,
	from_email text,
	"to" jsonb NOT NULL DEFAULT '[]',
	cc jsonb NOT NULL DEFAULT '[]',
	bcc jsonb NOT NULL DEFAULT '[]',
	reply_to jsonb NOT NULL DEFAULT '[]',
	sent_at timestamptz,
	received_at timestamptz,
	direction text NOT NULL DEFAULT 'incoming' CHECK (direction IN ('incoming', 'outgoing')),
	in_reply_to text,
	"references" text[] NOT NULL DEFAULT '{}',
	list_id text,
	conversation_id bigint REFERENCES conversations (id) ON DELETE SET NULL,
	snippet text,
	body_text text,
	body_html text,
	body_clean text,
	attachments jsonb NOT NULL DEFAULT '[]',
	size int,
	raw bytea COMPRESSION lz4,
	parse_error text,
	created_at timestamptz NOT NULL DEFAULT now(),
	search tsvector GENERATED ALWAYS AS (
		setweight(to_tsvector('simple', coalesce(subject, '')), 'A') ||
		setweight(to_tsvector('simple', coalesce(from_name, '') || ' ' || coalesce(from_email, '')), 'B') ||
		setweight(to_tsvector('simple', left(coalesce(body_clean, body_text, ''), 200000)), 'C')
	) STORED,
	UNIQUE (account_id, content_sha256)
);
ALTER TABLE messages ALTER COLUMN body_text SET COMPRESSION lz4;
ALTER TABLE messages ALTER COLUMN body_html SET COMPRESSION lz4;
ALTER TABLE messages ALTER COLUMN body_clean SET COMPRESSION lz4;
CREATE INDEX messages_provider ON messages (provider);
CREATE INDEX messages_account_message_id ON messages (account_id, message_id);
CREATE INDEX messages_conversation ON messages (conversation_id);
CREATE INDEX messages_search ON messages USING gin (search);

CREATE TABLE message_locations (
	id bigserial PRIMARY KEY,
	message_id bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
	folder_id bigint NOT NULL REFERENCES email_folders (id) ON DELETE CASCADE,
	uidvalidity bigint NOT NULL,
	uid bigint NOT NULL,
	flags text[] NOT NULL DEFAULT '{}',
	modseq bigint,
	UNIQUE (folder_id, uidvalidity, uid)
);
CREATE INDEX message_locations_message ON message_locations (message_id);

CREATE TABLE contacts (
	id bigserial PRIMARY KEY,
	account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	provider text NOT NULL,
	email text NOT NULL,
	name text,
	message_count int NOT NULL DEFAULT 0,
	first_seen_at timestamptz,
	last_seen_at timestamptz
);
CREATE UNIQUE INDEX contacts_account_email ON contacts (account_id, lower(email));

CREATE TABLE sync_runs (
	run_id bigserial PRIMARY KEY,
	account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	started_at timestamptz NOT NULL DEFAULT now(),
	finished_at timestamptz,
	status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'ok', 'failed')),
	folder_filter text[] NOT NULL DEFAULT '{}',
	listed boolean NOT NULL DEFAULT false,
	error text,
	fetched_count int NOT NULL DEFAULT 0,
	ingested_count int NOT NULL DEFAULT 0,
	duplicate_count int NOT NULL DEFAULT 0,
	error_count int NOT NULL DEFAULT 0
);
CREATE INDEX sync_runs_account ON sync_runs (account_id, started_at DESC);

-- Per-folder results of a run, the "per-folder results" of sync_runs; one row per folder job.
CREATE TABLE sync_run_folders (
	run_id bigint NOT NULL REFERENCES sync_runs (run_id) ON DELETE CASCADE,
	folder_id bigint NOT NULL REFERENCES email_folders (id) ON DELETE CASCADE,
	status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'done', 'failed')),
	enqueued_at timestamptz,
	finished_at timestamptz,
	uidvalidity bigint,
	last_uid bigint,
	fetched_count int NOT NULL DEFAULT 0,
	ingested_count int NOT NULL DEFAULT 0,
	duplicate_count int NOT NULL DEFAULT 0,
	error text,
	PRIMARY KEY (run_id, folder_id)
);
CREATE INDEX sync_run_folders_queued ON sync_run_folders (run_id) WHERE status = 'queued';

-- Threading looks up messages that reference a newly arrived one.
CREATE INDEX messages_references ON messages USING gin ("references");
CREATE INDEX messages_in_reply_to ON messages (account_id, in_reply_to);
