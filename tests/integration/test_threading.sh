#!/usr/bin/env bash
# Conversations against corpora with known threads (notmuch, Mail::Thread, fedora-devel's
# MHonArc index, imaptest THREAD scripts, synthetic ghosts): agreement per set, with deliberate
# differences in threading/allow.txt; shuffled reloads in small batches must group the same.
. "$(dirname "$0")/lib.sh"
T0=$EPOCHREALTIME
HERE=$ROOT/tests/integration/threading
CORPORA=${MAILPIPE_CORPORA:-$ROOT/../shared/corpora}
DRIVER=$ROOT/build/tests/thread_driver
# Shuffled reloads as seed:batch; seed 0 with batch 500 is the reference load.
RELOADS=${THREADING_RELOADS:-"1:1 2:7 3:50"}
# The reloads store records without bodies (threading reads headers only; indexing bodies for
# search is most of a load's time); THREADING_RELOAD_MODE=full stores them whole.
RELOAD_MODE=${THREADING_RELOAD_MODE:-headers}
# Deliberate differences from the corpora (THREADING_ALLOW=/dev/null shows them all as failures).
ALLOW=${THREADING_ALLOW:-$HERE/allow.txt}

if ! make -s -C "$ROOT" build/tests/thread_driver bin/mailpipe >/dev/null; then
	fail "build build/tests/thread_driver and bin/mailpipe"
	exit 1
fi

# Only PostgreSQL, in a private stack directory on ports of its own. Each set is stored by
# tests/integration/thread_driver.c (parser + store_messages, no Redis) into accounts of its
# own, in file order with batch 500 and then shuffled; corpora come from MAILPIPE_CORPORA.
pg_only_up thr 24000
export MAILPIPE_LOG=${MAILPIPE_LOG:-warn}
mailpipe db migrate >/dev/null || { fail "db migrate"; exit 1; }
WORK=$MAILPIPE_STACK_DIR/threading
mkdir -p "$WORK"

AGREE=0 THREADS=0 ALLOWED=0
elapsed() { # since EPOCHREALTIME value $1, in seconds with one decimal
	local us=$((${EPOCHREALTIME/./} - ${1/./}))
	echo "$((us / 1000000)).$((us / 100000 % 10))"
}

# run_set NAME LIMIT KIND EXPECT_ARGS INPUT...: one thread_driver process parses the inputs
# once and makes every load (the reference load, then the shuffled ones), then each reload's
# partition is compared with the reference one. LIMIT is "all" or a count. Writes its lines to
# $WORK/ID.out so that sets can run side by side; the comparison with the corpus's threads
# (KIND none: the corpus asserts none) is queued in $WORK/compare.batch for one compare.py
# run at the end.
run_set() {
	local name=$1 limit=$2
	shift 4 # KIND and EXPECT_ARGS are add's business
	local id=${name//\//_} lim=() runs=(--run 0:500) r k
	[ "$limit" = all ] || lim=(--limit "$limit")
	for r in $RELOADS; do
		if [ "$RELOAD_MODE" = full ]; then runs+=(--run "$r"); else runs+=(--run "$r:headers"); fi
	done
	local t0=$EPOCHREALTIME
	{
		"$DRIVER" --account "thr-$id" "${runs[@]}" "${lim[@]}" --tsv "$WORK/$id.tsv" \
			--out "$WORK/$id.part" "$@" 2>"$WORK/$id.err"
		local rc=$?
		if [ "$rc" -ne 0 ]; then
			echo "FAIL $name: thread_driver failed (exit $rc): $(tail -c 400 "$WORK/$id.err")"
			return
		fi
		local differs="" n m
		k=0
		for r in $RELOADS; do
			k=$((k + 1))
			if ! cmp -s "$WORK/$id.part.0" "$WORK/$id.part.$k"; then
				differs+=" seed:batch $r"
				diff "$WORK/$id.part.0" "$WORK/$id.part.$k" | head -6 | sed 's/^/  /' \
					>>"$WORK/$id.diff"
			fi
		done
		n=$(wc -l <"$WORK/$id.part.0") m=$(wc -l <"$WORK/$id.tsv")
		if [ -z "$differs" ]; then
			echo "PASS $name: same partition when shuffled (seed:batch $RELOADS;" \
				"$m messages, $n conversations; $(elapsed "$t0") s)"
		else
			echo "FAIL $name: partition differs from the file-order load for$differs"
			cat "$WORK/$id.diff"
		fi
	} >"$WORK/$id.out" 2>&1
}

SETS=()
add() { # same arguments as run_set
	local id=${1//\//_}
	SETS+=("$1")
	if [ "$3" != none ]; then
		local fields=("$1" "$WORK/$id.tsv" "$WORK/$id.cmp" "$3") expect
		read -ra expect <<<"$4"
		fields+=("${expect[@]}")
		(IFS=$'\t' && echo "${fields[*]}") >>"$WORK/compare.batch"
	fi
	run_set "$@" &
}
# Messages an imaptest script's first THREAD sees: all, or those APPENDed before it.
imaptest_count() {
	awk '/^state: created/ { c = 1 } /^ok append/ { n++ } tolower($0) ~ /^ok thread / { exit }
	     END { print c ? n : "all" }' "$1"
}

T1=$EPOCHREALTIME
if [ ! -d "$CORPORA" ]; then
	echo "SKIP threading corpora: $CORPORA not found (set MAILPIPE_CORPORA)"
fi

nm=$CORPORA/notmuch
if [ -d "$nm" ]; then
	add notmuch/default all notmuch-tree "$nm/expected/notmuch-tree-tag-inbox" "$nm/default"
	add notmuch/threading all groups "$HERE/notmuch-threading.groups" "$nm/threading"
	# No thread list ships for these: shuffle invariance only.
	for d in lkml broken duplicate; do
		[ -d "$nm/$d" ] && add "notmuch/$d" all none "" "$nm/$d"
	done
elif [ -d "$CORPORA" ]; then
	echo "SKIP notmuch: $nm not found"
fi

mt=$CORPORA/perl-Mail-Thread
if [ -f "$mt/EXPECTED.txt" ]; then
	for box in "$mt"/testbox*; do
		b=${box##*/}
		add "perl-Mail-Thread/$b" all mail-thread "$mt/EXPECTED.txt $b" "$box"
	done
elif [ -d "$CORPORA" ]; then
	echo "SKIP perl-Mail-Thread: $mt/EXPECTED.txt not found"
fi

jwz=$CORPORA/jwzthreading-fedora-devel
if [ -f "$jwz/2010-January.txt.gz" ] && [ -f "$jwz/2010-January_thread.html.gz" ]; then
	gzip -dc "$jwz/2010-January.txt.gz" >"$WORK/fedora-devel.mbox"
	add jwzthreading-fedora-devel all mhonarc "$jwz/2010-January_thread.html.gz" \
		"$WORK/fedora-devel.mbox"
elif [ -d "$CORPORA" ]; then
	echo "SKIP jwzthreading-fedora-devel: archive or thread index not found under $jwz"
fi

it=$CORPORA/imaptest
if [ -d "$it" ]; then
	for script in "$it"/thread*; do
		s=${script##*/}
		case $s in *.mbox) continue ;; esac
		if [ ! -f "$script.mbox" ]; then
			echo "SKIP imaptest/$s: no $s.mbox"
			continue
		fi
		# Scripts that APPEND start empty: their first THREAD sees the first appends only.
		add "imaptest/$s" "$(imaptest_count "$script")" imaptest \
			"$script" "$script.mbox"
	done
elif [ -d "$CORPORA" ]; then
	echo "SKIP imaptest: $it not found"
fi

python3 "$HERE/synth.py" --seed 7 --threads 60 --mbox "$WORK/synthetic.mbox" \
	--groups "$WORK/synthetic.groups"
add synthetic/ghosts-and-merges all groups "$WORK/synthetic.groups" "$WORK/synthetic.mbox"
# In-Reply-To headers that are not a message-id must not join unrelated conversations.
add synthetic/in-reply-to all groups "$HERE/in-reply-to.groups" "$HERE/in-reply-to.mbox"

wait
if [ -s "$WORK/compare.batch" ]; then
	python3 "$HERE/compare.py" --allow "$ALLOW" --batch "$WORK/compare.batch"
fi
for name in "${SETS[@]}"; do
	id=${name//\//_}
	# A set whose driver failed has no stored grouping to compare.
	if grep -q '^FAIL .*thread_driver failed' "$WORK/$id.out"; then rm -f "$WORK/$id.cmp"; fi
	cat "$WORK/$id.cmp" "$WORK/$id.out" 2>/dev/null | tee -a "$WORK/all.out"
	while read -r n m a; do
		AGREE=$((AGREE + n)) THREADS=$((THREADS + m)) ALLOWED=$((ALLOWED + ${a:-0}))
	done < <(sed -n 's/^[A-Z]* [^:]*: agreement \([0-9]*\)\/\([0-9]*\) threads\(, \([0-9]*\) allowed\)\{0,1\}$/\1 \2 \4/p' \
		"$WORK/$id.cmp" 2>/dev/null)
done
FAILS=$((FAILS + $(grep -c '^FAIL ' "$WORK/all.out" 2>/dev/null)))

# What every load left behind: each message in exactly one conversation, no conversation
# empty, and the summary counts of merged conversations right.
check "every loaded message is in a conversation" \
	[ "$(sql "SELECT count(*) FROM messages m JOIN accounts a ON a.id = m.account_id
	         WHERE a.name LIKE 'thr-%' AND m.conversation_id IS NULL")" = 0 ]
bad=$(sql "SELECT count(*) FROM conversations c JOIN accounts a ON a.id = c.account_id
           CROSS JOIN LATERAL (SELECT count(*) AS n FROM messages m WHERE m.conversation_id = c.id) m
           WHERE a.name LIKE 'thr-%' AND (m.n = 0 OR c.message_count IS DISTINCT FROM m.n)")
check "no conversation empty or miscounted after merges ($bad found)" [ "$bad" = 0 ]
check "no conversation key points at another account's conversation" \
	[ "$(sql "SELECT count(*) FROM conversation_keys k JOIN conversations c ON c.id = k.conversation_id
	         WHERE c.account_id <> k.account_id")" = 0 ]
echo "threading: $AGREE/$THREADS expected threads agree over all sets, $ALLOWED differ as" \
	"allowed (sets $(elapsed "$T1") s, in all $(elapsed "$T0") s)"
[ "$FAILS" -eq 0 ]
