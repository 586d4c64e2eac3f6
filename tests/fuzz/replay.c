/* A main() for the libFuzzer targets so that gcc builds can replay their corpora: every file
 * named on the command line (or in a directory named there) is passed once to
 * LLVMFuzzerTestOneInput. Prints one PASS line per corpus, counted by tests/run.sh; a crash or
 * an abort() in the target fails the run. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
	size_t got = buf ? fread(buf, 1, (size_t)n, f) : 0;
	fclose(f);
	if (!buf)
		return -1;
	LLVMFuzzerTestOneInput(buf, got);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		struct stat st;
		size_t files = 0;
		if (stat(argv[i], &st) != 0) {
			printf("FAIL replay %s: missing\n", argv[i]);
			return 1;
		}
		if (S_ISDIR(st.st_mode)) {
			DIR *d = opendir(argv[i]);
			struct dirent *e;
			while (d && (e = readdir(d))) {
				char path[4096];
				if (e->d_name[0] == '.')
					continue;
				snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
				if (run_file(path) == 0)
					files++;
			}
			if (d)
				closedir(d);
		} else if (run_file(argv[i]) == 0) {
			files++;
		}
		printf("PASS replay %s (%zu inputs)\n", argv[i], files);
	}
	return 0;
}
