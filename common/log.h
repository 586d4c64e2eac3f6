/* One-line structured logs to stderr: level=... stage=... msg="...". Owns the level and stage
 * name of the process; does not decide what is logged. Called by every module. */
#ifndef MP_LOG_H
#define MP_LOG_H

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Set once from main() before any other thread or handle exists. */
void log_setup(const char *stage, const char *level_name);
int log_enabled(enum log_level level);
/* The stage name given to log_setup ("writer", "cli", ...), or "mailpipe" before it. */
const char *log_stage_name(void);
void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Arguments are not evaluated below the configured level. fmt holds the key=value pairs after
 * level= and stage=, e.g. log_info("account=%s folder=\"%s\" msg=\"synced\"", ...). */
#define log_at(lvl, ...)                              \
	do {                                          \
		if (log_enabled(lvl))                 \
			log_write(lvl, __VA_ARGS__);  \
	} while (0)
#define log_error(...) log_at(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_at(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_at(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_at(LOG_DEBUG, __VA_ARGS__)

#endif
