/* An account's secret at login time: env:VAR and file:PATH resolved in the fetcher's own
 * environment, `stored:` opened from the job's sealed box (common/secretbox.c), cmd:COMMAND run
 * as an operator's token broker and its output cached. The clear text never reaches Redis, logs
 * or the database (invariant 7). Called by fetch.c and idle.c when they log in. */
#include "fetch.h"
#include "log.h"
#include "secretbox.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define CMD_OUTPUT_MAX 65536
#define CMD_CACHE_MAX 1024

/* The token cache of cmd: references. Process-wide on purpose: the job thread and the IDLE
 * thread log in to the same accounts, and a broker asked once per token lifetime is the point
 * of the cache. The lock also serialises brokers, so two logins at once run one command. */
struct cached_token {
	char *ref;
	char *token;
	double expires;	/* CLOCK_MONOTONIC seconds */
};
static struct {
	uv_once_t once;
	uv_mutex_t mu;
	struct cached_token v[CMD_CACHE_MAX];
	int n;
} cmd_cache = { .once = UV_ONCE_INIT };

static void cmd_cache_init(void)
{
	uv_mutex_init(&cmd_cache.mu);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void cached_drop(int i)
{
	free(cmd_cache.v[i].ref);
	secretbox_free_secret(cmd_cache.v[i].token);
	cmd_cache.v[i] = cmd_cache.v[--cmd_cache.n];
}

/* Under mu. A copy of a live token for ref, or NULL; expired ones are dropped on the way. */
static char *cached_get(const char *ref)
{
	double t = now_s();
	for (int i = 0; i < cmd_cache.n; i++) {
		if (cmd_cache.v[i].expires <= t) {
			cached_drop(i--);
			continue;
		}
		if (strcmp(cmd_cache.v[i].ref, ref) == 0)
			return strdup(cmd_cache.v[i].token);
	}
	return NULL;
}

/* Under mu. Keeps a copy of token for ttl seconds; a full cache loses its soonest to expire. */
static void cached_put(const char *ref, const char *token, double ttl)
{
	if (ttl <= 0)
		return;
	if (cmd_cache.n == CMD_CACHE_MAX) {
		int soonest = 0;
		for (int i = 1; i < cmd_cache.n; i++)
			if (cmd_cache.v[i].expires < cmd_cache.v[soonest].expires)
				soonest = i;
		cached_drop(soonest);
	}
	struct cached_token *c = &cmd_cache.v[cmd_cache.n];
	c->ref = strdup(ref);
	c->token = strdup(token);
	c->expires = now_s() + ttl;
	if (!c->ref || !c->token) {
		free(c->ref);
		secretbox_free_secret(c->token);
		return;
	}
	cmd_cache.n++;
}

/* Runs command with /bin/sh -c, its stdout into out (NUL-terminated), stdin and stderr on
 * /dev/null (a broker's diagnostics might hold the token), killed with its process group after
 * timeout_s. 0, or negative with one line in err that never quotes the output. */
static int run_command(const char *command, long timeout_s, char *out, size_t outlen, char *err,
		       size_t errlen)
{
	int fds[2];
	size_t n = 0;
	int rc = -EIO, status = 0, timed_out = 0;

	if (pipe2(fds, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "cannot start: %s", strerror(errno));
		return -errno;
	}
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "cannot start: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return -EIO;
	}
	if (pid == 0) {
		/* Only async-signal-safe calls here: the fetcher has other threads. */
		setpgid(0, 0);
		int null = open("/dev/null", O_RDWR);
		if (null < 0 || dup2(null, 0) < 0 || dup2(fds[1], 1) < 0 || dup2(null, 2) < 0)
			_exit(126);
		close_range(3, ~0U, 0);
		execl("/bin/sh", "sh", "-c", command, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	double deadline = now_s() + (double)timeout_s;
	for (;;) {
		double left = deadline - now_s();
		if (left <= 0) {
			timed_out = 1;
			break;
		}
		struct pollfd p = { .fd = fds[0], .events = POLLIN };
		int pr = poll(&p, 1, (int)(left * 1000) + 1);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			continue;
		char buf[4096];
		ssize_t r = read(fds[0], buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		size_t take = (size_t)r;
		if (n + take > outlen - 1)
			take = outlen - 1 - n;
		memcpy(out + n, buf, take);
		n += take;
		explicit_bzero(buf, sizeof(buf));
	}
	close(fds[0]);
	out[n] = 0;
	/* The output is complete: the command gets what is left of its time to exit. */
	while (!timed_out) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR) {
			status = -1;
			break;
		}
		if (now_s() >= deadline)
			timed_out = 1;
		else
			usleep(10000);
	}
	if (timed_out) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		snprintf(err, errlen, "did not finish within %ld s (MAILPIPE_SECRET_CMD_TIMEOUT_S)", timeout_s);
	} else if (status == -1) {
		snprintf(err, errlen, "lost track of the command");
	} else if (WIFSIGNALED(status)) {
		snprintf(err, errlen, "killed by signal %d", WTERMSIG(status));
	} else if (WEXITSTATUS(status) != 0) {
		snprintf(err, errlen, "exited with status %d", WEXITSTATUS(status));
	} else {
		rc = 0;
	}
	if (rc < 0)
		explicit_bzero(out, outlen);
	return rc;
}

/* A broker's output: JSON with access_token (and expires_in seconds or expires_at, a Unix
 * time) or plain text whose first line is the token. The token (malloc'd) and, in *ttl, how
 * long to keep it: until shortly before the stated expiry, else default_ttl. */
static char *parse_token(const char *out, long default_ttl, double *ttl, char *err, size_t errlen)
{
	const char *p = out;
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	*ttl = (double)default_ttl;
	if (*p == '{') {
		json_error_t je;
		json_t *o = json_loads(p, JSON_DISABLE_EOF_CHECK, &je);
		const char *tok = json_string_value(json_object_get(o, "access_token"));
		if (!o || !tok || !*tok) {
			snprintf(err, errlen, "printed JSON without an access_token");
			json_decref(o);
			return NULL;
		}
		json_t *in = json_object_get(o, "expires_in"), *at = json_object_get(o, "expires_at");
		double life = -1e18;	/* no stated expiry */
		/* Some brokers quote their numbers. */
		if (json_is_string(in))
			life = strtod(json_string_value(in), NULL);
		else if (json_is_number(in))
			life = json_number_value(in);
		else if (json_is_string(at))
			life = strtod(json_string_value(at), NULL) - (double)time(NULL);
		else if (json_is_number(at))
			life = json_number_value(at) - (double)time(NULL);
		if (life > -1e17 && life < 0)
			*ttl = 0;	/* expired already: used once, not kept */
		else if (life >= 0) {
			/* Refreshed a minute early, or a tenth of a short life early, so a login never
			 * presents a token that expires on the way. */
			double margin = life > 600 ? 60 : life / 10;
			*ttl = life - margin;
		}
		char *s = strdup(tok);
		json_decref(o);
		return s;
	}
	size_t len = strcspn(p, "\r\n");
	while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
		len--;
	if (!len) {
		snprintf(err, errlen, "printed nothing");
		return NULL;
	}
	return strndup(p, len);
}

static char *resolve_cmd(const struct mp_config *cfg, const char *ref, char *err, size_t errlen)
{
	char *out = malloc(CMD_OUTPUT_MAX), *token = NULL;
	char why[200];
	double ttl = 0;

	if (!out) {
		snprintf(err, errlen, "secret %.80s: out of memory", ref);
		return NULL;
	}
	uv_once(&cmd_cache.once, cmd_cache_init);
	uv_mutex_lock(&cmd_cache.mu);
	token = cached_get(ref);
	if (!token && run_command(ref + 4, cfg->secret_cmd_timeout_s, out, CMD_OUTPUT_MAX, why,
				  sizeof(why)) == 0) {
		token = parse_token(out, cfg->secret_cmd_cache_s, &ttl, why, sizeof(why));
		if (token) {
			cached_put(ref, token, ttl);
			log_debug("msg=\"secret %.80s: token from the command, kept %.0f s\"", ref, ttl);
		}
	}
	uv_mutex_unlock(&cmd_cache.mu);
	explicit_bzero(out, CMD_OUTPUT_MAX);
	free(out);
	if (!token)
		snprintf(err, errlen, "secret %.80s %s", ref, why);
	return token;
}

static const char *jstr_or_empty(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

static char *resolve_stored(const struct mp_config *cfg, json_t *acc, char *err, size_t errlen)
{
	struct secretbox_key keys[1 + SECRETBOX_MAX_KEYS];
	struct secretbox_sealed s = { 0 };
	unsigned char *nonce = NULL, *tag = NULL;
	size_t nn = 0, tn = 0;
	char aad[64], why[400], *secret = NULL;
	int n = 0, m;
	json_t *box = json_object_get(acc, "secret_box");
	json_t *id = json_object_get(acc, "account_id");
	if (!json_is_integer(id))
		id = json_object_get(acc, "id");
	const char *key_id = json_string_value(json_object_get(box, "key_id"));
	const char *ct = json_string_value(json_object_get(box, "ciphertext"));

	if (!key_id || !ct || !json_is_integer(id) ||
	    secretbox_unhex(jstr_or_empty(box, "nonce"), &nonce, &nn) < 0 ||
	    secretbox_unhex(jstr_or_empty(box, "tag"), &tag, &tn) < 0 ||
	    secretbox_unhex(ct, &s.ct, &s.ctlen) < 0 || nn != SECRETBOX_NONCE_LEN ||
	    tn != SECRETBOX_TAG_LEN || strlen(key_id) != 16) {
		snprintf(err, errlen, "the stored secret is missing or malformed in the job: set it "
				      "again with `mailpipe account secret`");
		goto out;
	}
	memcpy(s.key_id, key_id, sizeof(s.key_id));
	memcpy(s.nonce, nonce, nn);
	memcpy(s.tag, tag, tn);
	if (!*cfg->secret_key) {
		snprintf(err, errlen, "the account's secret is stored encrypted but MAILPIPE_SECRET_KEY "
				      "is not set in the fetcher's environment");
		goto out;
	}
	if ((n = secretbox_keys_load(keys, 1, "MAILPIPE_SECRET_KEY", cfg->secret_key, why, sizeof(why))) < 1 ||
	    (m = secretbox_keys_load(keys + 1, SECRETBOX_MAX_KEYS, "MAILPIPE_SECRET_KEY_OLD",
				     cfg->secret_key_old, why, sizeof(why))) < 0) {
		snprintf(err, errlen, "stored secret not opened: %s", why);
		n = 0;
		goto out;
	}
	n += m;
	const struct secretbox_key *k = secretbox_key_find(keys, n, key_id);
	if (!k) {
		snprintf(err, errlen, "the stored secret is sealed with key %s, which is neither "
				      "MAILPIPE_SECRET_KEY nor in MAILPIPE_SECRET_KEY_OLD", key_id);
		goto out;
	}
	secretbox_aad(aad, sizeof(aad), (long long)json_integer_value(id));
	secret = secretbox_open(k, aad, &s);
	if (!secret)
		snprintf(err, errlen, "the stored secret does not open with key %s: it was altered or "
				      "belongs to another account", key_id);
out:
	explicit_bzero(keys, sizeof(keys));
	free(nonce);
	free(tag);
	secretbox_sealed_release(&s);
	return secret;
}

void fetch_forget_secret(json_t *acc)
{
	const char *ref = json_string_value(json_object_get(acc, "secret_ref"));
	if (!ref || strncmp(ref, "cmd:", 4) != 0)
		return;
	uv_once(&cmd_cache.once, cmd_cache_init);
	uv_mutex_lock(&cmd_cache.mu);
	for (int i = 0; i < cmd_cache.n; i++)
		if (strcmp(cmd_cache.v[i].ref, ref) == 0)
			cached_drop(i--);
	uv_mutex_unlock(&cmd_cache.mu);
}

char *fetch_resolve_secret(const struct mp_config *cfg, json_t *acc, char *err, size_t errlen)
{
	const char *ref = json_string_value(json_object_get(acc, "secret_ref"));
	char why[400];

	if (!ref) {
		snprintf(err, errlen, "the job names no secret reference");
		return NULL;
	}
	if (strcmp(ref, "stored:") == 0)
		return resolve_stored(cfg, acc, err, errlen);
	if (strncmp(ref, "cmd:", 4) == 0 && ref[4])
		return resolve_cmd(cfg, ref, err, errlen);
	if (strncmp(ref, "env:", 4) == 0 || strncmp(ref, "file:", 5) == 0) {
		char *s = secretbox_ref_read(ref, why, sizeof(why));
		if (!s)
			snprintf(err, errlen, "secret %s", why);
		return s;
	}
	snprintf(err, errlen, "secret reference '%.40s' is not env:VAR, file:PATH, cmd:COMMAND or "
			      "stored:", ref);
	return NULL;
}
