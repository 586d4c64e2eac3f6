-- Secrets at rest (issue 11). An account's secret_ref is still a reference: env:VAR, file:PATH,
-- cmd:COMMAND (an operator's token broker), or 'stored:', which names the account's row in
-- account_secrets: the secret sealed with AES-256-GCM under MAILPIPE_SECRET_KEY, the account
-- id as associated data. Never the secret in clear (invariant 7).
ALTER TABLE accounts DROP CONSTRAINT IF EXISTS accounts_secret_ref_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_secret_ref_check
	CHECK (secret_ref ~ '^(env|file|cmd):.+' OR secret_ref = 'stored:');

-- Bumped whenever the secret changes (`account secret`, `secrets rotate` does not count: the
-- secret stays the same); an auth_failed account may try again after it.
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS secret_changed_at timestamptz NOT NULL DEFAULT now();

CREATE TABLE IF NOT EXISTS account_secrets (
	account_id bigint PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
	-- Which key seals it: 16 hex digits derived from the key (common/secretbox.c).
	key_id text NOT NULL CHECK (key_id ~ '^[0-9a-f]{16}$'),
	nonce bytea NOT NULL CHECK (length(nonce) = 12),
	ciphertext bytea NOT NULL CHECK (length(ciphertext) BETWEEN 1 AND 8192),
	tag bytea NOT NULL CHECK (length(tag) = 16),
	created_at timestamptz NOT NULL DEFAULT now(),
	rotated_at timestamptz
);
