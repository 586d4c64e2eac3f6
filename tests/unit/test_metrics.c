/* Unit tests for common/metrics.c: label escaping, histograms (cumulative buckets, +Inf, _sum,
 * _count), the series a stage exposes, the address syntax, and the HTTP endpoint on loopback
 * (a port range skips a port in use; only GET /metrics answers 200). */
#include "metrics.h"
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static char *capture(void (*fn)(FILE *, void *), void *arg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	fn(f, arg);
	fclose(f);
	return buf;
}

static void write_label(FILE *f, void *arg)
{
	metrics_write_label_value(f, arg);
}

static void test_escaping(void)
{
	char *s = capture(write_label, "a\\b\"c\nd");
	CHECK_EQ_STR(s, "a\\\\b\\\"c\\nd");
	free(s);
	s = capture(write_label, "plain-name_1");
	CHECK_EQ_STR(s, "plain-name_1");
	free(s);
}

static void write_hist(FILE *f, void *arg)
{
	static const double bounds[] = {0.1, 1};
	(void)arg;
	const uint64_t counts[] = {2, 3, 1};
	metrics_write_histogram(f, "x_seconds", "Help with \\ and\nnewline.", bounds, 2, counts,
				4.5);
}

static void test_histogram_format(void)
{
	char *s = capture(write_hist, NULL);
	CHECK_EQ_STR(s, "# HELP x_seconds Help with \\\\ and\\nnewline.\n"
			"# TYPE x_seconds histogram\n"
			"x_seconds_bucket{le=\"0.1\"} 2\n"
			"x_seconds_bucket{le=\"1\"} 5\n"
			"x_seconds_bucket{le=\"+Inf\"} 6\n"
			"x_seconds_sum 4.5\n"
			"x_seconds_count 6\n");
	free(s);
}

static void render(FILE *f, void *arg)
{
	(void)arg;
	metrics_render(f);
}

static void test_render_writer(void)
{
	metrics_setup("writer", "w\"1\\x\ny");
	metrics_add(MX_WRITTEN_MESSAGES, 5);
	metrics_add(MX_WRITTEN_MESSAGES, 2);
	metrics_add(MX_FETCHED_MESSAGES, 3); /* not the writer's: counted, not shown */
	metrics_observe(MH_WRITER_COMMIT, 0.003);
	metrics_observe(MH_WRITER_COMMIT, 0.005); /* le is inclusive */
	metrics_observe(MH_WRITER_COMMIT, 20);
	char *s = capture(render, NULL);
	CHECK(strstr(s, "mailpipe_info{stage=\"writer\",consumer=\"w\\\"1\\\\x\\ny\"} 1\n"));
	CHECK(strstr(s, "\nmailpipe_written_messages_total 7\n"));
	CHECK(strstr(s, "# TYPE mailpipe_written_messages_total counter\n"));
	CHECK(!strstr(s, "mailpipe_fetched_messages_total"));
	CHECK(!strstr(s, "mailpipe_stream_lag"));
	CHECK(strstr(s, "mailpipe_writer_commit_seconds_bucket{le=\"0.0025\"} 0\n"
			"mailpipe_writer_commit_seconds_bucket{le=\"0.005\"} 2\n"));
	CHECK(strstr(s, "mailpipe_writer_commit_seconds_bucket{le=\"10\"} 2\n"
			"mailpipe_writer_commit_seconds_bucket{le=\"+Inf\"} 3\n"
			"mailpipe_writer_commit_seconds_sum 20.008\n"
			"mailpipe_writer_commit_seconds_count 3\n"));
	/* One family header per name, even where the family's series lie apart in the table. */
	char *first = strstr(s, "# TYPE mailpipe_errors_total counter");
	CHECK(first && !strstr(first + 1, "# TYPE mailpipe_errors_total"));
	CHECK(strstr(s, "mailpipe_errors_total{kind=\"rejected\"} 0\n"
			"mailpipe_errors_total{kind=\"database\"} 0\n"
			"mailpipe_errors_total{kind=\"redis\"} 0\n"));
	free(s);
}

static void test_render_scheduler_lag(void)
{
	metrics_setup("scheduler", "s");
	metrics_set(MX_STREAM_LAG_RAW, 12);
	char *s = capture(render, NULL);
	CHECK(strstr(s, "mailpipe_stream_lag{stream=\"raw\",group=\"parsers\"} 12\n"));
	/* Not sampled yet: no value rather than a made-up 0. */
	CHECK(!strstr(s, "mailpipe_stream_lag{stream=\"jobs\","));
	CHECK(strstr(s, "# TYPE mailpipe_stream_lag gauge\n"));
	CHECK(strstr(s, "mailpipe_stream_length{stream=\"dead\"} 0\n"));
	free(s);
}

static void test_parse_addr(void)
{
	char host[64];
	int lo, hi;
	CHECK_EQ_INT(metrics_parse_addr("127.0.0.1:9100", host, sizeof(host), &lo, &hi), 0);
	CHECK_EQ_STR(host, "127.0.0.1");
	CHECK_EQ_INT(lo, 9100);
	CHECK_EQ_INT(hi, 9100);
	CHECK_EQ_INT(metrics_parse_addr("0.0.0.0:9100-9109", host, sizeof(host), &lo, &hi), 0);
	CHECK_EQ_INT(hi, 9109);
	CHECK_EQ_INT(metrics_parse_addr("[::1]:9100", host, sizeof(host), &lo, &hi), 0);
	CHECK_EQ_STR(host, "::1");
	CHECK_EQ_INT(metrics_parse_addr(":9100", host, sizeof(host), &lo, &hi), 0);
	CHECK_EQ_STR(host, "");
	static const char *const bad[] = {"9100",  "host",     "h:0",	  "h:65536", "h:9100-9000",
					  "h:91a", "::1:9100", "h:9100-", "h:",	     "[::1]9100"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_EQ_INT(metrics_parse_addr(bad[i], host, sizeof(host), &lo, &hi), -EINVAL);
}

/* An HTTP exchange on loopback: the status line and the whole response. */
static int http_get(int port, const char *request, char *resp, size_t size)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	if (write(fd, request, strlen(request)) < 0) {
		close(fd);
		return -1;
	}
	size_t len = 0;
	ssize_t n;
	while (len < size - 1 && (n = read(fd, resp + len, size - 1 - len)) > 0)
		len += (size_t)n;
	resp[len] = 0;
	close(fd);
	return (int)len;
}

static void test_server(void)
{
	int err;
	CHECK(metrics_start("", &err) == NULL && err == 0);
	CHECK(metrics_start("nonsense", &err) == NULL && err == -EINVAL);

	/* Hold one port of a range: the server must take the next. */
	int busy = socket(AF_INET, SOCK_STREAM, 0), port = 0;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	socklen_t sl = sizeof(sa);
	for (int p = 28000 + getpid() % 4000; p < 32700 && !port; p += 7) { /* not ephemeral */
		sa.sin_port = htons((uint16_t)p);
		if (bind(busy, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(busy, 1) == 0)
			port = p;
	}
	getsockname(busy, (struct sockaddr *)&sa, &sl);
	CHECK(port > 0);
	char addr[64], want[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d-%d", port, port + 3);
	snprintf(want, sizeof(want), "127.0.0.1:%d", port + 1);
	metrics_setup("parser", "p");
	metrics_add(MX_PARSED_MESSAGES, 4);
	struct metrics_server *ms = metrics_start(addr, &err);
	CHECK(ms != NULL);
	if (!ms)
		goto out;
	CHECK_EQ_STR(metrics_server_addr(ms), want);

	char resp[65536];
	CHECK(http_get(port + 1, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", resp, sizeof(resp)) >
	      0);
	CHECK(!strncmp(resp, "HTTP/1.1 200 OK\r\n", 17));
	CHECK(strstr(resp, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
	CHECK(strstr(resp, "\nmailpipe_parsed_messages_total 4\n"));
	char *body = strstr(resp, "\r\n\r\n"), *cl = strstr(resp, "Content-Length: ");
	CHECK(body && cl && strtoul(cl + 16, NULL, 10) == strlen(body + 4));
	CHECK(http_get(port + 1, "GET /metrics?x=1 HTTP/1.0\r\n\r\n", resp, sizeof(resp)) > 0);
	CHECK(!strncmp(resp, "HTTP/1.1 200 OK\r\n", 17));
	CHECK(http_get(port + 1, "GET / HTTP/1.1\r\n\r\n", resp, sizeof(resp)) > 0);
	CHECK(!strncmp(resp, "HTTP/1.1 404 Not Found\r\n", 24));
	CHECK(http_get(port + 1, "POST /metrics HTTP/1.1\r\n\r\n", resp, sizeof(resp)) > 0);
	CHECK(!strncmp(resp, "HTTP/1.1 404 Not Found\r\n", 24));
	CHECK(http_get(port + 1, "GET /metricsx HTTP/1.1\r\n\r\n", resp, sizeof(resp)) > 0);
	CHECK(!strncmp(resp, "HTTP/1.1 404 Not Found\r\n", 24));
	/* A second server in the same range takes the port after. */
	struct metrics_server *ms2 = metrics_start(addr, &err);
	snprintf(want, sizeof(want), "127.0.0.1:%d", port + 2);
	CHECK(ms2 && !strcmp(metrics_server_addr(ms2), want));
	metrics_stop(ms2);
	metrics_stop(ms);
	CHECK(http_get(port + 1, "GET /metrics HTTP/1.1\r\n\r\n", resp, sizeof(resp)) < 0);
out:
	close(busy);
	metrics_stop(NULL);
}

int main(void)
{
	TEST_RUN(test_escaping);
	TEST_RUN(test_histogram_format);
	TEST_RUN(test_render_writer);
	TEST_RUN(test_render_scheduler_lag);
	TEST_RUN(test_parse_addr);
	TEST_RUN(test_server);
	return test_summary();
}
