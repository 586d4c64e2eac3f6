#!/usr/bin/env bash
# Secrets at rest (issue 11): a password given on stdin is stored sealed (AES-256-GCM) in
# Postgres, synced from Dovecot, and never found in clear in the run log, in any Redis key or in
# a pg_dump; `secrets rotate` re-seals it under a new key and the next sync still logs in; a
# wrong key, a tampered ciphertext or one moved to another account fail the sync with one clear
# line; `account secret` changes it and bumps secret_changed_at; a cmd: reference (a token
# broker) is run once while its token is fresh. The local Dovecot offers no XOAUTH2, so the
# broker prints the password and the account logs in with auth password: the same code path
# (fetcher/secret.c) hands a broker's token to either mechanism.
. "$(dirname "$0")/lib.sh"
stack_up 60 7

D=$MAILPIPE_STACK_DIR
CLEAR="vault-$(openssl rand -hex 12)"	# distinctive: found nowhere by accident
"$ROOT/deploy/local/stack.sh" add-user vault "$CLEAR" --sample 150 11 >/dev/null || { fail "add-user vault"; finish; }
openssl rand -base64 32 >"$D/key1"
openssl rand -hex 32 >"$D/key2"
openssl rand -base64 32 >"$D/key3"
export MAILPIPE_LOG=debug	# the most a log ever says: the clear secret must still be absent

add_vault() { # NAME, extra flags... (secret from the caller's stdin or flags)
	local name=$1
	shift
	mailpipe account add "$name" --host 127.0.0.1 --port "$MP_IMAPS_PORT" --tls implicit \
		--username vault --ca-file "$MP_CA_FILE" --interval 0 --initial-window-days 0 \
		--email vault@example.org "$@"
}
accounts() { sql "SELECT count(*) FROM accounts"; }
verify_vault() { # ACCOUNT, verify.py flags...
	local account=$1
	shift
	python3 "$ROOT/tests/integration/verify.py" "$account" 127.0.0.1 "$MP_IMAP_PORT" vault "$CLEAR" "$@" \
		|| FAILS=$((FAILS + 1))
}
# Everything Redis holds, read back: every key's DUMP and, since DUMP may compress, its
# contents by type (streams entry by entry).
redis_everything() {
	local k t
	redis-cli -p "$MP_REDIS_PORT" --scan | while read -r k; do
		t=$(redis-cli -p "$MP_REDIS_PORT" TYPE "$k")
		echo "== $k ($t)"
		redis-cli -p "$MP_REDIS_PORT" DUMP "$k"
		case $t in
		stream) redis-cli -p "$MP_REDIS_PORT" XRANGE "$k" - + ;;
		string) redis-cli -p "$MP_REDIS_PORT" GET "$k" ;;
		hash) redis-cli -p "$MP_REDIS_PORT" HGETALL "$k" ;;
		list) redis-cli -p "$MP_REDIS_PORT" LRANGE "$k" 0 -1 ;;
		set) redis-cli -p "$MP_REDIS_PORT" SMEMBERS "$k" ;;
		zset) redis-cli -p "$MP_REDIS_PORT" ZRANGE "$k" 0 -1 ;;
		esac
	done
}

# --- the command line: bad use stores nothing -----------------------------------------------
n0=$(accounts)
echo "$CLEAR" | add_vault bad --secret-stdin --secret env:X >/dev/null 2>"$D/err"
check "--secret-stdin with --secret is a usage error (exit 2)" [ $? -eq 2 ]
check "... named in one line" grep -q "^mailpipe: --secret-stdin and --secret are exclusive$" "$D/err"
echo "$CLEAR" | MAILPIPE_SECRET_KEY= add_vault bad --secret-stdin >/dev/null 2>"$D/err"
check "--secret-stdin without MAILPIPE_SECRET_KEY exits 2" [ $? -eq 2 ]
check "... with one line naming MAILPIPE_SECRET_KEY" \
	bash -c "[ \$(wc -l <'$D/err') = 1 ] && grep -q 'MAILPIPE_SECRET_KEY is not set' '$D/err'"
echo "$CLEAR" | MAILPIPE_SECRET_KEY=file:$D/nope add_vault bad --secret-stdin >/dev/null 2>"$D/err"
check "an unreadable key file exits 2, naming it" bash -c "grep -q 'file:$D/nope cannot be read' '$D/err'"
MAILPIPE_SECRET_KEY=file:$D/key1 add_vault bad --secret-stdin </dev/null >/dev/null 2>"$D/err"
check "an empty secret on stdin is refused (exit 2)" [ $? -eq 2 ]
add_vault bad --secret "$CLEAR" >/dev/null 2>"$D/err"
check "--secret given the password itself is refused (exit 2)" [ $? -eq 2 ]
check "nothing was stored by any of these" [ "$(accounts)" = "$n0" ]
check "... and no error line repeated the secret" bash -c "! grep -qF '$CLEAR' '$D/err'"

# --- add with --secret-stdin, sync ------------------------------------------------------------
export MAILPIPE_SECRET_KEY=file:$D/key1
printf '%s\n' "$CLEAR" | add_vault vault --secret-stdin >"$D/out" 2>&1
check "account add --secret-stdin exits 0" [ $? -eq 0 ]
check "the account's secret_ref is 'stored:'" [ "$(sql "SELECT secret_ref FROM accounts WHERE name = 'vault'")" = "stored:" ]
check "account_secrets holds a 12-byte nonce, a 16-byte tag and a ciphertext as long as the password" \
	[ "$(sql "SELECT length(nonce) || ' ' || length(tag) || ' ' || length(ciphertext) FROM account_secrets s
		JOIN accounts a ON a.id = s.account_id WHERE a.name = 'vault'")" = "12 16 ${#CLEAR}" ]
key1_id=$(sql "SELECT key_id FROM account_secrets")
check "account show names the key id, not the secret" \
	bash -c "mailpipe account show vault --json | grep -q '\"secret_key_id\": \"$key1_id\"'"

run_start
mailpipe sync vault --wait --timeout 120 >"$D/s1.json"
check "first sync of the stored-secret account exits 0" [ $? -eq 0 ]
verify_vault vault --summary "$D/s1.json"

# --- rotation ---------------------------------------------------------------------------------
MAILPIPE_SECRET_KEY=file:$D/key2 mailpipe secrets rotate >"$D/rot" 2>&1
check "secrets rotate without the old key fails for the row it cannot open (exit 1)" [ $? -eq 1 ]
check "... and says so" grep -q "which MAILPIPE_SECRET_KEY_OLD does not hold; not rotated" "$D/rot"
MAILPIPE_SECRET_KEY=file:$D/key2 MAILPIPE_SECRET_KEY_OLD=file:$D/key3,file:$D/key1 \
	mailpipe secrets rotate >"$D/rot" 2>&1
check "secrets rotate re-encrypts the one stored secret" grep -q "^secrets rotate: 1 re-encrypted under key .*, 0 already under it, 0 failed$" "$D/rot"
MAILPIPE_SECRET_KEY=file:$D/key2 MAILPIPE_SECRET_KEY_OLD=file:$D/key1 mailpipe secrets rotate >"$D/rot" 2>&1
check "a second rotate changes nothing (idempotent)" grep -q "^secrets rotate: 0 re-encrypted under key .*, 1 already under it, 0 failed$" "$D/rot"
key2_id=$(sql "SELECT key_id FROM account_secrets")
check "the key id changed with the key ($key1_id -> $key2_id)" [ "$key1_id" != "$key2_id" -a -n "$key2_id" ]

run_stop
export MAILPIPE_SECRET_KEY=file:$D/key2 MAILPIPE_FETCHERS=1 MAILPIPE_SECRET_CMD_TIMEOUT_S=2
run_start
mailpipe sync vault --wait --timeout 120 >"$D/s2.json"
check "after rotation, a fetcher with only the new key syncs (exit 0)" [ $? -eq 0 ]
verify_vault vault --summary "$D/s2.json" --expect-new 0

# --- account secret: a new secret bumps secret_changed_at -------------------------------------
t0=$(sql "SELECT secret_changed_at FROM accounts WHERE name = 'vault'")
n0=$(sql "SELECT encode(nonce, 'hex') FROM account_secrets")
echo "wrong-password" | mailpipe account secret vault --secret-stdin >/dev/null
t1=$(sql "SELECT secret_changed_at FROM accounts WHERE name = 'vault'")
check "account secret --secret-stdin bumps secret_changed_at" \
	[ "$(sql "SELECT '$t1'::timestamptz > '$t0'::timestamptz")" = t ]
# A fetcher keeps an account's logged-in connection between jobs: a new one must log in.
run_stop
run_start
mailpipe sync vault --wait --timeout 60 >"$D/s3.json" 2>/dev/null
check "a wrong stored password fails the sync as an auth failure (exit 1)" \
	bash -c "[ $? -eq 1 ] && grep -q 'auth failed for account' '$D/s3.json'"
echo "$CLEAR" | mailpipe account secret vault --secret-stdin >/dev/null
check "setting it again seals it afresh (new nonce)" [ "$(sql "SELECT encode(nonce, 'hex') FROM account_secrets")" != "$n0" ]
mailpipe sync vault --wait --timeout 60 >"$D/s4.json"
check "... and the next sync logs in (exit 0)" [ $? -eq 0 ]
mailpipe account secret vault --secret-stdin --secret env:X >/dev/null 2>&1
check "account secret with both --secret-stdin and --secret exits 2" [ $? -eq 2 ]

# --- a ciphertext moved to another account, or altered, does not open -------------------------
add_vault moved --secret env:UNSET_VAR >/dev/null
sql "UPDATE accounts SET secret_ref = 'stored:' WHERE name = 'moved';
     INSERT INTO account_secrets (account_id, key_id, nonce, ciphertext, tag)
     SELECT (SELECT id FROM accounts WHERE name = 'moved'), key_id, nonce, ciphertext, tag
     FROM account_secrets WHERE account_id = (SELECT id FROM accounts WHERE name = 'vault')" >/dev/null
mailpipe sync moved --wait --timeout 60 >"$D/s5.json" 2>/dev/null
check "vault's ciphertext copied to account 'moved' fails its sync (exit 1)" [ $? -eq 1 ]
check "... with one clear line (AAD binds it to its account)" \
	grep -q "account 'moved': the stored secret does not open with key $key2_id: it was altered or belongs to another account" "$D/s5.json"
flip="UPDATE account_secrets SET ciphertext = set_byte(ciphertext, 0, get_byte(ciphertext, 0) # 1)
      WHERE account_id = (SELECT id FROM accounts WHERE name = 'vault')"
sql "$flip" >/dev/null
mailpipe sync vault --wait --timeout 60 >"$D/s6.json" 2>/dev/null
check "one flipped bit of vault's ciphertext fails its sync (exit 1) with the same clear line" \
	bash -c "[ $? -eq 1 ] && grep -q \"account 'vault': the stored secret does not open with key $key2_id\" '$D/s6.json'"
sql "$flip" >/dev/null
mailpipe sync vault --wait --timeout 60 >/dev/null
check "... and flipped back, it syncs again (exit 0)" [ $? -eq 0 ]

# --- cmd: a token broker, cached -------------------------------------------------------------
printf '%s\n' "$CLEAR" >"$D/vault.pass"
cat >"$D/broker.sh" <<EOF
#!/bin/sh
# Counts its runs; prints the token (here the password: Dovecot has no XOAUTH2).
echo run >>"$D/broker.count"
cat "$D/vault.pass"
EOF
cat >"$D/broker_json.sh" <<EOF
#!/bin/sh
echo run >>"$D/broker_json.count"
printf '{"access_token": "%s", "token_type": "Bearer", "expires_in": %s}\n' "\$(cat "$D/vault.pass")" "\$1"
EOF
printf '#!/bin/sh\ncat "%s"\necho "broker: upstream refused" >&2\nexit 3\n' "$D/vault.pass" >"$D/broker_fail.sh"
chmod +x "$D"/broker*.sh
add_vault broker --secret "cmd:$D/broker.sh" >/dev/null
mailpipe sync broker --wait --timeout 120 >"$D/c1.json"
check "cmd: account's first sync exits 0" [ $? -eq 0 ]
verify_vault broker --summary "$D/c1.json"
mailpipe sync broker --wait --timeout 60 >"$D/c2.json"
check "cmd: account's second sync exits 0" [ $? -eq 0 ]
jobs_run=$(sql "SELECT count(*) FROM sync_run_folders s JOIN sync_runs r USING (run_id)
	JOIN accounts a ON a.id = r.account_id WHERE a.name = 'broker'")
check "the broker ran once for two syncs ($jobs_run folder jobs logged in; plain output cached MAILPIPE_SECRET_CMD_CACHE_S)" \
	[ "$(wc -l <"$D/broker.count")" = 1 ]

add_vault broker_long --secret "cmd:$D/broker_json.sh 3600" >/dev/null
mailpipe sync broker_long --wait --timeout 120 >/dev/null && mailpipe sync broker_long --wait --timeout 60 >/dev/null
check "a JSON token with expires_in 3600: two syncs, one broker run" [ "$(wc -l <"$D/broker_json.count")" = 1 ]
rm -f "$D/broker_json.count"
add_vault broker_short --secret "cmd:$D/broker_json.sh 1" >/dev/null
mailpipe sync broker_short --wait --timeout 120 >/dev/null
sleep 1.5
mailpipe sync broker_short --wait --timeout 60 >/dev/null
check "a JSON token with expires_in 1 is not reused once expired (broker ran $(wc -l <"$D/broker_json.count") times)" \
	[ "$(wc -l <"$D/broker_json.count")" -ge 2 ]

# A token the server refuses (revoked before its stated expiry) is not taken from the cache
# again: the next login asks the broker, which by then has a good one.
echo wrong-token >"$D/rotating.pass"
printf '#!/bin/sh\necho run >>"%s"\ncat "%s"\n' "$D/rotating.count" "$D/rotating.pass" >"$D/broker_rotating.sh"
chmod +x "$D/broker_rotating.sh"
add_vault broker_rot --secret "cmd:$D/broker_rotating.sh" >/dev/null
mailpipe sync broker_rot --wait --timeout 60 >/dev/null 2>&1
check "a broker's refused token fails the sync" [ $? -eq 1 ]
cp "$D/vault.pass" "$D/rotating.pass"
mailpipe account resume broker_rot >/dev/null
mailpipe sync broker_rot --wait --timeout 60 >/dev/null
rc=$?
check "... and is not reused from the cache: the broker runs again and the sync passes ($(wc -l <"$D/rotating.count") runs)" \
	test "$rc" -eq 0 -a "$(wc -l <"$D/rotating.count")" -ge 2

add_vault broker_fail --secret "cmd:$D/broker_fail.sh" >/dev/null
mailpipe sync broker_fail --wait --timeout 60 >"$D/c3.json" 2>/dev/null
check "a failing broker fails the sync (exit 1)" [ $? -eq 1 ]
check "... naming the reference and its exit status" grep -q "account 'broker_fail': secret cmd:$D/broker_fail.sh exited with status 3" "$D/c3.json"
add_vault broker_slow --secret "cmd:sleep 30" >/dev/null
start=$(date +%s)
mailpipe sync broker_slow --wait --timeout 60 >"$D/c4.json" 2>/dev/null
check "a broker that hangs is killed after MAILPIPE_SECRET_CMD_TIMEOUT_S (2 s)" \
	grep -q "secret cmd:sleep 30 did not finish within 2 s" "$D/c4.json"
check "... and the sync ends soon ($(( $(date +%s) - start )) s)" [ $(( $(date +%s) - start )) -lt 30 ]

# --- a wrong key: a clear error, no crash ------------------------------------------------------
run_stop
export MAILPIPE_SECRET_KEY=file:$D/key3
run_start
mailpipe sync vault --wait --timeout 60 >"$D/w1.json" 2>/dev/null
check "with the wrong MAILPIPE_SECRET_KEY the sync fails (exit 1)" [ $? -eq 1 ]
check "... naming the key the secret needs" \
	grep -q "account 'vault': the stored secret is sealed with key $key2_id, which is neither MAILPIPE_SECRET_KEY nor in MAILPIPE_SECRET_KEY_OLD" "$D/w1.json"
mailpipe sync broker --wait --timeout 60 >/dev/null
check "... and the fetcher lives on: the next account syncs (exit 0)" [ $? -eq 0 ]
run_stop
MAILPIPE_SECRET_KEY= run_start
mailpipe sync vault --wait --timeout 60 >"$D/w2.json" 2>/dev/null
check "with no MAILPIPE_SECRET_KEY in the fetcher the sync fails with one clear line" \
	grep -q "account 'vault': the account's secret is stored encrypted but MAILPIPE_SECRET_KEY is not set" "$D/w2.json"
run_stop
# IDLE watches log in from their own thread (fetcher/idle.c) with the same stored secret; the
# scheduler publishes their targets, sealed box included, in a Redis key that stays.
export MAILPIPE_SECRET_KEY=file:$D/key2 MAILPIPE_IDLE=1
# A secret the fetcher could not open put vault in auth_failed (no watch, no schedule) until
# the operator says the key is fixed.
mailpipe account resume vault >/dev/null
check "account resume vault after the key is fixed" [ "$(sql "SELECT state FROM accounts WHERE name = 'vault'")" = active ]
run_start
opened() { grep -q 'account=vault msg="IDLE watch opened' "$RUN_LOG"; }
for i in $(seq 100); do opened && break; sleep 0.2; done
check "an IDLE watch on vault's INBOX logs in with the stored secret" opened
run_stop
check "no stage crashed (no signal or abort in the run log)" \
	bash -c "! grep -Eqi 'killed by signal|core dumped|Segmentation|Aborted|AddressSanitizer' '$RUN_LOG'"

# --- the clear secret is nowhere ----------------------------------------------------------------
ct_hex=$(sql "SELECT encode(ciphertext, 'hex') FROM account_secrets WHERE account_id = (SELECT id FROM accounts WHERE name = 'vault')")
redis_everything >"$D/redis.txt" 2>&1
pg_dump "$MAILPIPE_DATABASE_URL" >"$D/dump.sql"
check "the run log ($(wc -l <"$RUN_LOG") lines at debug level) never holds the password" \
	bash -c "! grep -aqF '$CLEAR' '$RUN_LOG'"
check "Redis ($(grep -c '^== ' "$D/redis.txt") keys, DUMP and contents) never holds the password" \
	bash -c "! grep -aqF '$CLEAR' '$D/redis.txt'"
check "... though the IDLE targets there carry its ciphertext (the scan finds what is there)" \
	grep -aqF "$ct_hex" "$D/redis.txt"
check "pg_dump ($(wc -c <"$D/dump.sql") bytes) never holds the password" \
	bash -c "! grep -aqF '$CLEAR' '$D/dump.sql'"
check "... though it holds the ciphertext" grep -aqF "$ct_hex" "$D/dump.sql"
check "... nor its hex, in bytea or elsewhere" \
	bash -c "! grep -aqiF '$(printf '%s' "$CLEAR" | od -An -tx1 | tr -d ' \n')' '$D/dump.sql' '$D/redis.txt'"
finish
