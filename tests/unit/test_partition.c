/* Unit tests for common/partition.c and the keys config.c derives from it: an account's
 * partition, the hash tags ({mp} unpartitioned, {mp:p} partitioned), and the URL map's
 * parsing and its errors. */
#include "config.h"
#include "partition.h"
#include "test.h"

#include <errno.h>

static void free_urls(char **urls, long n)
{
	for (long i = 0; i < n; i++)
		free(urls[i]);
}

static void test_partition_of(void)
{
	struct mp_config c = { .redis_partitions = 1, .redis_prefix = "mp" };
	CHECK_EQ_INT(partition_of(&c, 7), 0);
	c.redis_partitions = 2;
	CHECK_EQ_INT(partition_of(&c, 1), 1);
	CHECK_EQ_INT(partition_of(&c, 2), 0);
	CHECK_EQ_INT(partition_of(&c, 7), 1);
	c.redis_partitions = 5;
	CHECK_EQ_INT(partition_of(&c, 12), 2);
	CHECK_EQ_INT(partition_of(&c, 10000000007LL), 2);
}

static void test_keys(void)
{
	char buf[128];
	struct mp_config c = { .redis_partitions = 1, .redis_prefix = "mp" };
	partition_key(&c, 0, "jobs", buf, sizeof(buf));
	CHECK_EQ_STR(buf, "{mp}:jobs");
	c.redis_partitions = 4;
	partition_key(&c, 3, "jobs:first", buf, sizeof(buf));
	CHECK_EQ_STR(buf, "{mp:3}:jobs:first");
	partition_tag(&c, 0, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "{mp:0}");
}

/* The environment decides the derived names: unpartitioned keys stay as they always were;
 * partitioned, the work keys move and the global ones stay. */
static void test_config_keys(void)
{
	struct mp_config c;
	unsetenv("MAILPIPE_REDIS_PARTITIONS");
	unsetenv("MAILPIPE_REDIS_PARTITION_URLS");
	unsetenv("MAILPIPE_PARTITION");
	CHECK_EQ_INT(config_load(&c), 0);
	CHECK_EQ_STR(c.key_jobs, "{mp}:jobs");
	CHECK_EQ_STR(c.key_raw, "{mp}:raw");
	CHECK_EQ_STR(c.key_epoch, "{mp}:epoch");
	CHECK_EQ_STR(c.key_emailid_prefix, "{mp}:emailid:");
	CHECK(c.parts == NULL);
	config_release(&c);

	setenv("MAILPIPE_REDIS_PARTITIONS", "2", 1);
	setenv("MAILPIPE_PARTITION", "1", 1);
	setenv("MAILPIPE_REDIS_PARTITION_URLS", "1=redis://127.0.0.1:7001/0", 1);
	CHECK_EQ_INT(config_load(&c), 0);
	CHECK_EQ_STR(c.key_jobs, "{mp:1}:jobs");
	CHECK_EQ_STR(c.key_jobs_first, "{mp:1}:jobs:first");
	CHECK_EQ_STR(c.key_backfill, "{mp:1}:jobs:backfill");
	CHECK_EQ_STR(c.key_parsed, "{mp:1}:parsed");
	CHECK_EQ_STR(c.key_lock_prefix, "{mp:1}:lock:folder:");
	CHECK_EQ_STR(c.key_progress_prefix, "{mp:1}:progress:");
	CHECK_EQ_STR(c.key_events, "{mp}:events");
	CHECK_EQ_STR(c.key_requests, "{mp}:requests");
	CHECK_EQ_STR(c.key_changes, "{mp}:changes");
	CHECK_EQ_STR(c.key_dead, "{mp}:dead");
	CHECK_EQ_STR(c.key_conn_host_prefix, "{mp}:conn:host:");
	CHECK_EQ_STR(partition_url(&c, 1), "redis://127.0.0.1:7001/0");
	CHECK_EQ_STR(partition_url(&c, 0), c.redis_url);
	config_release(&c);

	setenv("MAILPIPE_PARTITION", "2", 1); /* not a partition of 2 */
	CHECK_EQ_INT(config_load(&c), -EINVAL);
	setenv("MAILPIPE_PARTITION", "0", 1);
	setenv("MAILPIPE_REDIS_PARTITION_URLS", "5=redis://x:1", 1);
	CHECK_EQ_INT(config_load(&c), -EINVAL);
	unsetenv("MAILPIPE_REDIS_PARTITIONS");
	unsetenv("MAILPIPE_REDIS_PARTITION_URLS");
	unsetenv("MAILPIPE_PARTITION");
}

static void test_parse_urls(void)
{
	char *urls[4] = { 0 };
	char err[200];
	CHECK_EQ_INT(partition_parse_urls("", 4, urls, err, sizeof(err)), 0);
	CHECK(!urls[0] && !urls[3]);
	CHECK_EQ_INT(partition_parse_urls("0=redis://a:1,2-3=unix:///tmp/r.sock", 4, urls, err,
					  sizeof(err)), 0);
	CHECK_EQ_STR(urls[0], "redis://a:1");
	CHECK(urls[1] == NULL);
	CHECK_EQ_STR(urls[2], "unix:///tmp/r.sock");
	CHECK_EQ_STR(urls[3], "unix:///tmp/r.sock");
	free_urls(urls, 4);
	memset(urls, 0, sizeof(urls));

	static const struct {
		const char *spec, *err;
	} bad[] = {
		{ "redis://a:1", "'redis://a:1' is not P=URL or P-Q=URL" },
		{ "4=redis://a:1", "'4' names a partition outside 0-3" },
		{ "x=redis://a:1", "'x' is not a partition number or range" },
		{ "3-1=redis://a:1", "'3-1' is not a partition number or range" },
		{ "1=http://a:1", "'http://a:1' is not a redis:// or unix:// URL" },
		{ "1=", "'1=' is not P=URL or P-Q=URL" },
		{ "0-1=redis://a:1,1=redis://b:1", "partition 1 is mapped twice" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		CHECK_EQ_INT(partition_parse_urls(bad[i].spec, 4, urls, err, sizeof(err)), -EINVAL);
		CHECK_EQ_STR(err, bad[i].err);
		free_urls(urls, 4);
		memset(urls, 0, sizeof(urls));
	}
}

/* Partitions without a URL of their own are the home server's connection, whatever it is; one
 * on a server that refuses is NULL (the caller's job fails), not the home connection. */
static void test_partition_redis(void)
{
	struct mp_config c;
	setenv("MAILPIPE_REDIS_PARTITIONS", "3", 1);
	setenv("MAILPIPE_REDIS_PARTITION_URLS", "2=redis://127.0.0.1:1/0", 1);
	CHECK_EQ_INT(config_load(&c), 0);
	redisContext *home = (redisContext *)&c; /* never used as a connection here */
	CHECK(partition_redis(&c, home, 0) == home);
	CHECK(partition_redis(&c, home, 1) == home);
	CHECK(partition_redis(&c, home, 2) == NULL);
	CHECK(partition_redis(&c, home, 2) == NULL); /* not asked again within a second */
	CHECK(partition_redis(&c, home, 3) == NULL); /* no such partition */
	config_release(&c);
	unsetenv("MAILPIPE_REDIS_PARTITIONS");
	unsetenv("MAILPIPE_REDIS_PARTITION_URLS");
}

int main(void)
{
	TEST_RUN(test_partition_of);
	TEST_RUN(test_keys);
	TEST_RUN(test_config_keys);
	TEST_RUN(test_parse_urls);
	TEST_RUN(test_partition_redis);
	return test_summary();
}
