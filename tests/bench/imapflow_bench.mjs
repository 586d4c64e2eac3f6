// The imapflow + mailparser peer of tests/bench/peers_bench.sh: over IMAPS (trusting the
// given CA), list every folder, fetch every message's source and parse it with mailparser's
// simpleParser, one folder after another on one connection; print one JSON line
// {"messages", "bytes", "folders", "seconds"}. Nothing is stored: this is the work of a
// Node program that reads a whole mailbox.
//   NODE_PATH=<node_modules> node imapflow_bench.mjs HOST PORT USER PASS CA_FILE
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const [host, port, user, pass, caFile] = process.argv.slice(2);
if (!caFile) {
	console.error('usage: imapflow_bench.mjs HOST PORT USER PASS CA_FILE');
	process.exit(2);
}
// ES modules ignore NODE_PATH: resolve the packages from it by hand.
const require = createRequire(path.join(process.env.NODE_PATH || '.', 'x.js'));
const { ImapFlow } = require('imapflow');
const { simpleParser } = require('mailparser');

const t0 = process.hrtime.bigint();
const client = new ImapFlow({
	host,
	port: Number(port),
	secure: true,
	auth: { user, pass },
	tls: { ca: readFileSync(caFile) },
	logger: false,
});
await client.connect();
let messages = 0, bytes = 0, folders = 0;
for (const box of await client.list()) {
	if (box.flags.has('\\Noselect') || box.flags.has('\\NonExistent'))
		continue;
	folders++;
	const lock = await client.getMailboxLock(box.path, { readOnly: true });
	try {
		if (client.mailbox.exists === 0)
			continue;
		for await (const msg of client.fetch('1:*', { uid: true, source: true })) {
			const parsed = await simpleParser(msg.source);
			if (parsed.headers)
				messages++;
			bytes += msg.source.length;
		}
	} finally {
		lock.release();
	}
}
await client.logout();
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
console.log(JSON.stringify({ messages, bytes, folders, seconds }));
