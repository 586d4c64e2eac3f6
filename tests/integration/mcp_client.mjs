// Drives `mailpipe mcp` with the official MCP TypeScript SDK client (Client +
// StdioClientTransport) and with raw JSON-RPC lines, and checks every answer against
// PostgreSQL. Called by test_mcp.sh after two accounts (A, B) were synced from Dovecot.
//
// usage: node mcp_client.mjs SDK_DIR ACCOUNT_A ACCOUNT_B
// env: MAILPIPE_DATABASE_URL (psql), MP_STACK_SCRIPT (restarts Postgres), MP_RUN_PID (the
// stages are stopped and resumed), MP_IMAP_PORT and MP_A_USER/MP_A_PASSWORD (to APPEND to
// A's INBOX before sync_now). Prints PASS/FAIL lines; exits 1 when any check failed.
import { createRequire } from 'node:module';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const [sdkDir, A, B] = process.argv.slice(2);
const require = createRequire(path.join(sdkDir, 'node_modules', 'x.js'));
const { Client } = require('@modelcontextprotocol/sdk/client/index.js');
const { StdioClientTransport } = require('@modelcontextprotocol/sdk/client/stdio.js');
const { McpError, EmptyResultSchema } = require('@modelcontextprotocol/sdk/types.js');
const sdkVersion = JSON.parse(readFileSync(path.join(sdkDir, 'node_modules/@modelcontextprotocol/sdk/package.json'))).version;

let fails = 0;
async function check(name, fn) {
	try {
		const r = await fn();
		if (r === false) throw new Error('check returned false');
		console.log(`PASS ${name}`);
	} catch (e) {
		fails++;
		console.log(`FAIL ${name}: ${String(e && e.stack || e).split('\n').slice(0, 3).join(' | ')}`);
	}
}
function eq(got, want, what = '') {
	const g = JSON.stringify(got), w = JSON.stringify(want);
	if (g !== w) throw new Error(`${what} got ${g.slice(0, 300)} want ${w.slice(0, 300)}`);
}
function ok(cond, what) {
	if (!cond) throw new Error(what);
}

function sql(q) {
	const out = execFileSync('psql', [process.env.MAILPIPE_DATABASE_URL, '-X', '-q', '-A', '-t',
		'-v', 'ON_ERROR_STOP=1', '-c', q], { encoding: 'utf8' });
	return out.split('\n').filter((l) => l !== '');
}
const ints = (q) => sql(q).map(Number);
const acct = (name) => `(SELECT id FROM accounts WHERE name = '${name}')`;

// MCP_TEST_WRAP (e.g. "valgrind -q --error-exitcode=9") runs every server under a checker.
const wrap = (process.env.MCP_TEST_WRAP || '').split(' ').filter((w) => w);
function server(accounts) {
	const args = [...wrap.slice(1), 'mailpipe', 'mcp'];
	for (const a of accounts) args.push('--account', a);
	return { command: wrap.length ? wrap[0] : args.shift(), args };
}

async function connect(accounts) {
	const { command, args } = server(accounts);
	const transport = new StdioClientTransport({ command, args, env: process.env, stderr: 'inherit' });
	const client = new Client({ name: 'mailpipe-test', version: '1.0.0' });
	await client.connect(transport);
	return client;
}
// A tool call whose structuredContent the SDK has already validated against the outputSchema
// (it throws on a mismatch); also checks the text item carries the same JSON.
async function call(client, name, args = {}) {
	const r = await client.callTool({ name, arguments: args });
	if (r.isError) throw new Error(`${name} failed: ${r.content[0].text}`);
	eq(JSON.parse(r.content[0].text), r.structuredContent, `${name} text item`);
	return r.structuredContent;
}
async function callError(client, name, args) {
	const r = await client.callTool({ name, arguments: args });
	ok(r.isError === true, `${name} ${JSON.stringify(args)} did not fail: ${JSON.stringify(r).slice(0, 200)}`);
	ok(!r.structuredContent, 'an error carries no structuredContent');
	return r.content[0].text;
}

// Every account name, message id and conversation id that appears in a result, to prove the
// scope. kind is what an "id" key names at this depth: 'message' or 'conversation'.
function collect(obj, seen, kind = null) {
	if (Array.isArray(obj)) return obj.forEach((x) => collect(x, seen, kind));
	if (obj && typeof obj === 'object') {
		for (const [k, v] of Object.entries(obj)) {
			if (k === 'account' && typeof v === 'string') seen.accounts.add(v);
			if (k === 'id' && kind) seen[kind].add(v);
			if (k === 'conversation_id' && v !== null) seen.conversation.add(v);
			const sub = /^messages?$/.test(k) ? 'message' : /^conversations?$/.test(k) ? 'conversation' : null;
			collect(v, seen, sub);
		}
	}
}
const scopeSet = () => ({ accounts: new Set(), message: new Set(), conversation: new Set() });

// Raw JSON-RPC over the server's stdio: what the SDK would not send.
async function raw(lines, accounts = [A]) {
	const { command, args } = server(accounts);
	const p = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'],
		env: { ...process.env, MAILPIPE_LOG: 'info' } });
	let out = '', err = '';
	p.stdout.on('data', (d) => (out += d));
	p.stderr.on('data', (d) => (err += d));
	const t0 = Date.now();
	for (const l of lines) p.stdin.write(l + '\n');
	p.stdin.end();
	const code = await new Promise((res) => p.on('close', res));
	return { code, ms: Date.now() - t0, stderr: err, lines: out.split('\n').filter((l) => l) };
}

const a = await connect([A]);
const seenA = scopeSet();
const bMessages = new Set(ints(`SELECT id FROM messages WHERE account_id = ${acct(B)}`));
const bConversations = new Set(ints(`SELECT id FROM conversations WHERE account_id = ${acct(B)}`));
const aMessages = ints(`SELECT id FROM messages WHERE account_id = ${acct(A)} ORDER BY id`);
const aConversations = new Set(ints(`SELECT id FROM conversations WHERE account_id = ${acct(A)}`));
ok(aMessages.length > 0 && bMessages.size > 0, 'both accounts have messages');

await check(`initialize: serverInfo mailpipe, tools capability (SDK ${sdkVersion})`, () => {
	eq(a.getServerVersion().name, 'mailpipe');
	ok(a.getServerCapabilities().tools, 'no tools capability');
});

await check('tools/list: the eight tools, each with an inputSchema and an outputSchema', async () => {
	const { tools } = await a.listTools();
	eq(tools.map((t) => t.name).sort(), ['get_conversation', 'get_message', 'list_conversations',
		'list_folders', 'list_messages', 'search_messages', 'sync_now', 'sync_status']);
	for (const t of tools) {
		ok(t.inputSchema.type === 'object' && t.outputSchema.type === 'object', t.name);
		ok(t.description.length > 20, `${t.name} description`);
	}
});

await check('list_folders: every folder of A with the counts stored in Postgres', async () => {
	const r = await call(a, 'list_folders');
	collect(r, seenA);
	eq(r.folders.map((f) => `${f.account}|${f.name}|${f.message_count}|${f.unread_count}`),
		sql(`SELECT '${A}|' || name || '|' || message_count || '|' || unread_count FROM email_folders
		     WHERE account_id = ${acct(A)} ORDER BY name`));
	const inbox = await call(a, 'list_folders', { folder: 'INBOX' });
	eq(inbox.folders.map((f) => f.name), ['INBOX']);
});

await check('list_conversations: the 10 most recent conversations of A', async () => {
	const r = await call(a, 'list_conversations', { limit: 10 });
	collect(r, seenA);
	eq(r.conversations.map((c) => [c.id, c.message_count]), sql(`SELECT id, message_count FROM conversations
		WHERE account_id = ${acct(A)} ORDER BY last_message_at DESC NULLS LAST, id DESC LIMIT 10`)
		.map((l) => l.split('|').map(Number)));
});

await check('list_conversations: folder filter gives the conversations with a message in Sent', async () => {
	const r = await call(a, 'list_conversations', { folder: 'Sent', limit: 1000 });
	collect(r, seenA);
	eq(r.conversations.map((c) => c.id).sort((x, y) => x - y), ints(`SELECT DISTINCT m.conversation_id
		FROM messages m JOIN message_locations l ON l.message_id = m.id JOIN email_folders f ON f.id = l.folder_id
		WHERE m.account_id = ${acct(A)} AND f.name = 'Sent' ORDER BY 1`));
});

await check('list_messages: every message of A in INBOX, newest first', async () => {
	const r = await call(a, 'list_messages', { folder: 'INBOX', limit: 1000 });
	collect(r, seenA);
	const want = sql(`SELECT m.id || '|' || coalesce(m.subject, '') FROM messages m WHERE m.account_id = ${acct(A)}
		AND EXISTS (SELECT 1 FROM message_locations l JOIN email_folders f ON f.id = l.folder_id
		  WHERE l.message_id = m.id AND f.name = 'INBOX')
		ORDER BY coalesce(m.sent_at, m.received_at) DESC NULLS LAST, m.id DESC`);
	ok(want.length > 5, 'INBOX has messages');
	eq(r.messages.map((m) => `${m.id}|${m.subject ?? ''}`), want);
	const five = await call(a, 'list_messages', { limit: 5 });
	eq(five.messages.length, 5);
});

const word = sql(`SELECT lower(w) FROM messages m, regexp_split_to_table(m.subject, ' ') w
	WHERE m.account_id = ${acct(A)} AND w ~ '^[A-Za-z]{6,}$' ORDER BY m.id LIMIT 1`)[0];
await check(`search_messages: '${word}' finds the messages of A that Postgres finds`, async () => {
	const r = await call(a, 'search_messages', { query: word, limit: 1000 });
	collect(r, seenA);
	eq(r.query, word);
	ok(r.messages.length > 0, 'nothing found');
	eq(r.messages.map((m) => m.id).sort((x, y) => x - y), ints(`SELECT id FROM messages
		WHERE account_id = ${acct(A)} AND search @@ websearch_to_tsquery('simple', '${word}') ORDER BY id`));
});

const mid = aMessages[0];
await check(`get_message ${mid}: subject, sender and folders as stored`, async () => {
	const r = await call(a, 'get_message', { id: mid, max_body_chars: 50 });
	collect(r, seenA);
	const [subject, from] = sql(`SELECT coalesce(subject, ''), coalesce(from_email, '') FROM messages WHERE id = ${mid}`)[0].split('|');
	eq([r.message.id, r.message.subject ?? '', r.message.from.email ?? ''], [mid, subject, from]);
	eq(r.message.folders.map((f) => `${f.folder}:${f.uid}`), sql(`SELECT f.name || ':' || l.uid
		FROM message_locations l JOIN email_folders f ON f.id = l.folder_id WHERE l.message_id = ${mid}
		ORDER BY f.name, l.uid`));
	ok((r.message.body_text ?? '').length <= 50, 'max_body_chars cuts the body');
});

const conv = ints(`SELECT conversation_id FROM messages WHERE account_id = ${acct(A)}
	GROUP BY conversation_id ORDER BY count(*) DESC, conversation_id LIMIT 1`)[0];
await check(`get_conversation ${conv}: its messages, oldest first`, async () => {
	const r = await call(a, 'get_conversation', { id: conv });
	collect(r, seenA);
	eq(r.conversation.id, conv);
	eq(r.messages.map((m) => m.id), ints(`SELECT id FROM messages WHERE conversation_id = ${conv}
		ORDER BY coalesce(sent_at, received_at) NULLS LAST, id`));
	ok(r.messages.length >= 2, 'a conversation of several messages');
});

await check('sync_status: A only, server counts equal stored counts after the sync', async () => {
	const r = await call(a, 'sync_status');
	collect(r, seenA);
	eq(r.accounts.map((x) => x.account), [A]);
	const s = r.accounts[0];
	eq([s.state, s.last_run.status, s.message_count],
		['active', 'ok', aMessages.length]);
	ok(s.folders.length >= 3, 'folders listed');
	for (const f of s.folders) {
		eq([f.name, f.stored_count, f.stored_unread], [f.name, f.server_count, f.server_unread]);
		ok(f.last_error === null, `${f.name} has an error`);
	}
});

await check('scope: nothing A\'s server returned names B or carries an id of B', () => {
	eq([...seenA.accounts], [A]);
	ok(seenA.message.size > 10 && seenA.conversation.size > 10, 'ids were seen');
	eq([...seenA.message].filter((id) => !aMessages.includes(id)), [], 'message ids not of A');
	eq([...seenA.conversation].filter((id) => !aConversations.has(id)), [], 'conversation ids not of A');
});

const bMsg = [...bMessages][0], bConv = [...bConversations][0];
await check(`scope: B's message ${bMsg} and conversation ${bConv} are "not found" from A's server`, async () => {
	ok(!aMessages.includes(bMsg), 'ids are per account');
	eq(await callError(a, 'get_message', { id: bMsg }), `message ${bMsg} not found`);
	eq(await callError(a, 'get_conversation', { id: bConv }), `conversation ${bConv} not found`);
	eq(await callError(a, 'list_messages', { account: B }), `account '${B}' not found`);
	eq(await callError(a, 'sync_now', { account: B }), `account '${B}' not found`);
	const none = await call(a, 'search_messages', { query: word, account: A, provider: 'nosuch' });
	eq(none.messages, []);
});

await check('bad arguments come back as tool errors naming the argument', async () => {
	eq(await callError(a, 'list_messages', { limit: 0 }), 'limit must be an integer from 1 to 1000');
	eq(await callError(a, 'list_messages', { bogus: 1 }), "unknown argument 'bogus'");
	eq(await callError(a, 'get_message', {}), 'id is required');
	eq(await callError(a, 'search_messages', { query: '' }), 'query must be a non-empty string');
	eq(await callError(a, 'list_folders', { folder: 'No Such Folder' }), "folder 'No Such Folder' not found");
	eq(await callError(a, 'sync_now', { folders: ['INBOX', 'Nope'] }), `folder 'Nope' not found in account '${A}'`);
	eq(await callError(a, 'sync_now', { wait: 'yes' }), 'wait must be true or false');
	eq(await callError(a, 'sync_now', { folders: 'INBOX' }), 'folders must be a list of at most 64 strings');
});

await check('an unknown tool is a protocol error -32602', async () => {
	try {
		await a.callTool({ name: 'drop_everything', arguments: {} });
	} catch (e) {
		eq(e.code, -32602);
		return;
	}
	throw new Error('no error');
});

await check('an unknown method (server/discover) gets -32601', async () => {
	const t0 = Date.now();
	try {
		await a.request({ method: 'server/discover', params: {} }, EmptyResultSchema);
	} catch (e) {
		ok(e instanceof McpError, String(e));
		eq(e.code, -32601);
		ok(Date.now() - t0 < 2000, 'answered promptly');
		return;
	}
	throw new Error('no error');
});

await check('ping answers', async () => { await a.ping(); });

// sync_now: a message appended to A's INBOX on the server is committed when the call returns.
const tag = `mcpsync${Date.now()}`;
execFileSync('python3', ['-c', `
import imaplib, sys
i = imaplib.IMAP4('127.0.0.1', int(sys.argv[1])); i.login(sys.argv[2], sys.argv[3])
raw = ('From: Sync Test <sync@example.org>\\r\\nTo: demo@example.org\\r\\nSubject: mcp ' + sys.argv[4] +
       '\\r\\nMessage-ID: <' + sys.argv[4] + '@example.org>\\r\\nDate: Wed, 02 Dec 2026 10:00:00 +0000\\r\\n\\r\\nappended\\r\\n')
i.append('INBOX', '()', None, raw.encode()); i.logout()`, process.env.MP_IMAP_PORT,
	process.env.MP_A_USER, process.env.MP_A_PASSWORD, tag]);
await check('sync_now with wait: the message appended on the server is committed and listed', async () => {
	const t0 = Date.now();
	const r = await call(a, 'sync_now', { wait: true, timeout_s: 90 });
	const ms = Date.now() - t0;
	eq([r.account, r.status, r.finished, r.timed_out], [A, 'ok', true, false]);
	eq(r.summary.run_id, r.run_id);
	ok(r.summary.ingested_count >= 1, `ingested ${r.summary.ingested_count}`);
	eq(sql(`SELECT count(*) FROM messages WHERE account_id = ${acct(A)} AND message_id = '${tag}@example.org'`), ['1']);
	eq(sql(`SELECT status FROM sync_runs WHERE run_id = ${r.run_id}`), ['ok']);
	const found = await call(a, 'search_messages', { query: tag });
	eq(found.messages.map((m) => m.subject), [`mcp ${tag}`]);
	console.log(`  sync_now(wait) took ${ms} ms`);
});
await check('sync_now without wait returns the run at once', async () => {
	const r = await call(a, 'sync_now', { folders: ['INBOX'] });
	ok(r.run_id > 0 && r.account === A && typeof r.finished === 'boolean', JSON.stringify(r));
	eq(sql(`SELECT account_id = ${acct(A)} FROM sync_runs WHERE run_id = ${r.run_id}`), ['t']);
});
await check('sync_now: with the stages stopped the wait times out, sending progress that keeps the client waiting; resumed, the run finishes', async () => {
	const pids = execFileSync('pgrep', ['-P', process.env.MP_RUN_PID], { encoding: 'utf8' })
		.split('\n').filter((l) => l).map(Number);
	ok(pids.length >= 4, `stages of mailpipe run: ${pids}`);
	const progress = [];
	let r;
	for (const pid of pids) process.kill(pid, 'SIGSTOP');
	try {
		// A 1.5 s request timeout outlives the 3 s wait only if progress resets it.
		r = await a.callTool({ name: 'sync_now', arguments: { wait: true, timeout_s: 3 } }, undefined,
			{ onprogress: (p) => progress.push(p), resetTimeoutOnProgress: true, timeout: 1500 });
	} finally {
		for (const pid of pids) process.kill(pid, 'SIGCONT');
	}
	const s = r.structuredContent;
	eq([s.account, s.status, s.finished, s.timed_out], [A, 'running', false, true]);
	ok(progress.length >= 2, `progress notifications: ${JSON.stringify(progress)}`);
	ok(progress.every((p, i) => p.total === 3 && (i === 0 || p.progress > progress[i - 1].progress)),
		`progress grows towards the timeout: ${JSON.stringify(progress)}`);
	ok(/^run \d+: \d+ of \d+ folders done, \d+ messages ingested$/.test(progress[0].message), progress[0].message);
	const again = await call(a, 'sync_now', { wait: true, timeout_s: 60 });
	eq([again.run_id, again.status, again.finished], [s.run_id, 'ok', true], 'the same run, joined');
});

await check('a restarted Postgres does not end the session: the next call reconnects', async () => {
	execFileSync(process.env.MP_STACK_SCRIPT, ['restart', 'postgres'], { stdio: 'ignore' });
	const r = await call(a, 'list_folders', { folder: 'INBOX' });
	eq(r.folders.map((f) => f.name), ['INBOX']);
});
await a.close();

const b = await connect([B]);
await check(`a server started with --account ${B} never shows ${A}`, async () => {
	const seen = scopeSet();
	collect(await call(b, 'list_messages', { limit: 1000 }), seen);
	collect(await call(b, 'list_conversations', { limit: 1000 }), seen);
	collect(await call(b, 'list_folders'), seen);
	collect(await call(b, 'sync_status'), seen);
	eq([...seen.accounts], [B]);
	eq(seen.message.size, bMessages.size, 'every message of B listed');
	eq([...seen.message].filter((id) => !bMessages.has(id)), [], 'message ids not of B');
	eq([...seen.conversation].filter((id) => !bConversations.has(id)), [], 'conversation ids not of B');
	eq(await callError(b, 'get_message', { id: mid }), `message ${mid} not found`);
	eq(await callError(b, 'get_conversation', { id: conv }), `conversation ${conv} not found`);
	eq((await call(b, 'search_messages', { query: tag })).messages, []);
});
await b.close();

const all = await connect([]);
await check('a server without --account shows both accounts', async () => {
	const r = await call(all, 'sync_status');
	eq(r.accounts.map((x) => x.account).sort(), [A, B].sort());
	const f = await call(all, 'list_folders', { limit: 1000 });
	eq(new Set(f.folders.map((x) => x.account)).size, 2);
	const n = await call(all, 'list_messages', { limit: 1000, provider: 'imap' });
	eq(n.messages.length, Math.min(1000, Number(sql('SELECT count(*) FROM messages')[0])));
	ok((await callError(all, 'sync_now', {})).startsWith('sync_now needs an account: 2 accounts'), 'needs an account');
});
await all.close();

await check('raw JSON-RPC: 2025-11-25 negotiated, -32700, -32600, -32601, -32602, exit 0 on EOF', async () => {
	const r = await raw([
		'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}',
		'{"jsonrpc":"2.0","method":"notifications/initialized"}',
		'{"jsonrpc":"2.0","id":2,"method":"server/discover","params":{}}',
		'this is not json',
		'[{"jsonrpc":"2.0","id":3,"method":"ping"}]',
		'{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"arguments":{}}}',
		'{"jsonrpc":"2.0","id":"five","method":"ping"}',
		'{"jsonrpc":"2.0","id":6,"method":"initialize","params":{"protocolVersion":"1999-01-01"}}',
	]);
	eq(r.code, 0, 'exit status');
	const msgs = r.lines.map((l) => JSON.parse(l));
	eq(msgs.map((m) => [m.id ?? null, m.error ? m.error.code : 'ok']),
		[[1, 'ok'], [2, -32601], [null, -32700], [null, -32600], [4, -32602], ['five', 'ok'], [6, 'ok']]);
	eq(msgs[0].result.protocolVersion, '2025-11-25');
	eq(msgs[0].result.capabilities, { tools: {} });
	eq(msgs[6].result.protocolVersion, '2025-11-25');
	ok(r.stderr.includes('level='), 'logs go to stderr');
	console.log(`  7 raw exchanges and exit in ${r.ms} ms`);
});

process.exit(fails ? 1 : 0);
