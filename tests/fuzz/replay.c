/*
 * replay: the driver the fuzz targets link with when -Dfuzzing_engine=none.
 *
 *   fuzz_<name> PATH...
 *
 * Runs LLVMFuzzerTestOneInput once on every file named, and on every regular file directly
 * inside a directory named (one level, dot files skipped, in name order), each from an
 * exactly sized heap buffer so ASan sees a read past its end. Prints each input before
 * running it, so a crash names its input. Exits 0 when all ran, 1 when a path could not be
 * read or nothing ran (a wrong corpus path must not pass as a test).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/base.h"
#include "fuzz.h"

static int run_file(const char *path)
{
    char *data = NULL;
    size_t len = 0;
    if (lt_read_file(path, 16 << 20, &data, &len) != 0) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        return -1;
    }
    char *exact = fuzz_copy(data, len);
    free(data);
    printf("  %s (%zu bytes)\n", path, len);
    fflush(stdout);
    LLVMFuzzerTestOneInput((const uint8_t *)exact, len);
    free(exact);
    return 0;
}

/* @return the number of inputs run, or -1. */
static long run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: no such file or directory: %s\n", path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return run_file(path) == 0 ? 1 : -1;

    struct dirent **names;
    int n = scandir(path, &names, NULL, alphasort);
    long ran = 0;
    if (n < 0) {
        fprintf(stderr, "replay: cannot list %s\n", path);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char full[4096];
        if (names[i]->d_name[0] != '.' && ran >= 0 &&
            snprintf(full, sizeof(full), "%s/%s", path, names[i]->d_name) < (int)sizeof(full) &&
            stat(full, &st) == 0 && S_ISREG(st.st_mode))
            ran = run_file(full) == 0 ? ran + 1 : -1;
        free(names[i]);
    }
    free(names);
    return ran;
}

int main(int argc, char **argv)
{
    long total = 0;
    for (int i = 1; i < argc; i++) {
        long n = run_path(argv[i]);
        if (n < 0)
            return 1;
        total += n;
    }
    printf("%s: ran %ld inputs\n", argv[0], total);
    return total > 0 ? 0 : 1;
}
