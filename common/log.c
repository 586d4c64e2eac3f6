/* Structured one-line logging. The level and stage are process-wide settings written once by
 * main() before threads start, the single exception to "no mutable globals". */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static enum log_level log_level = LOG_INFO;
static char log_stage[32] = "mailpipe";

static const char *const log_names[] = { "error", "warn", "info", "debug" };

const char *log_stage_name(void)
{
	return log_stage;
}

void log_setup(const char *stage, const char *level_name)
{
	if (stage)
		snprintf(log_stage, sizeof(log_stage), "%s", stage);
	if (!level_name || !*level_name)
		return;
	for (int i = 0; i <= LOG_DEBUG; i++)
		if (strcasecmp(level_name, log_names[i]) == 0)
			log_level = (enum log_level)i;
}

int log_enabled(enum log_level level)
{
	return level <= log_level;
}

void log_write(enum log_level level, const char *fmt, ...)
{
	char line[4096];
	struct timespec ts;
	struct tm tm;
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s stage=%s ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		     ts.tv_nsec / 1000000, log_names[level], log_stage);
	va_list ap;
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* One write per line keeps lines whole when several daemons share a terminal. */
	size_t len = strnlen(line, sizeof(line) - 2);
	for (size_t i = 0; i < len; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[len++] = '\n';
	fwrite(line, 1, len, stderr);
}
