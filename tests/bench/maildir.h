/* The message files of Maildir++ trees, for the benches: cur/ and new/ of the top folder and
 * of every .Sub folder (tmp/ holds deliveries in progress), in path order so that every run
 * sees the same sequence. Header-only; each bench includes it once. */
#ifndef MP_BENCH_MAILDIR_H
#define MP_BENCH_MAILDIR_H

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct names {
	char **v;
	size_t n, cap;
};

static int names_add(struct names *l, const char *path)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		char **v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	if (!(l->v[l->n] = strdup(path)))
		return -ENOMEM;
	l->n++;
	return 0;
}

static int maildir_walk(struct names *l, const char *dir, int in_mail)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int rc = 0;
	if (!d) {
		fprintf(stderr, "bench: %s: %s\n", dir, strerror(errno));
		return -errno;
	}
	while (rc == 0 && (e = readdir(d))) {
		char path[4096];
		struct stat st;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, "tmp"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode))
			rc = maildir_walk(l, path, !strcmp(e->d_name, "cur") || !strcmp(e->d_name, "new"));
		else if (S_ISREG(st.st_mode) && in_mail)
			rc = names_add(l, path);
	}
	closedir(d);
	return rc;
}

/* Appends the message files under dir to l, sorted. 0 or -errno (reported). */
static int maildir_list(struct names *l, const char *dir)
{
	int rc = maildir_walk(l, dir, 0);
	if (rc == 0)
		qsort(l->v, l->n, sizeof(*l->v), cmp_str);
	return rc;
}

static void names_release(struct names *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

#endif
