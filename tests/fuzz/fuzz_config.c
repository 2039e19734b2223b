/*
 * fuzz_config: lt_config_load (lib/config/config.c) on the input as the JSON config file,
 * with an empty environment. Most inputs fail (no database_url, no TLS files); that is the
 * point: the error paths must not crash or leak.
 *
 * Invariants, from config.h:
 * - the result is 0, LT_EINVAL or LT_EIO (never LT_ENOMEM here);
 * - on success every string field is set and workers >= 1; lt_config_free releases it all;
 * - on failure `err` is a NUL-terminated "config: ..." message and `cfg` holds nothing
 *   (all zero bytes).
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "fuzz.h"

static char path[] = "/tmp/latch-fuzz-config.XXXXXX";

static void remove_file(void)
{
    unlink(path);
}

/* Writes the input to this process's temporary file, created on first use. */
static void write_input(const uint8_t *data, size_t size)
{
    static int created;
    int fd;
    if (!created) {
        FUZZ_CHECK((fd = mkstemp(path)) >= 0);
        created = 1;
        atexit(remove_file);
    } else {
        FUZZ_CHECK((fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC)) >= 0);
    }
    for (size_t off = 0; off < size;) {
        ssize_t n = write(fd, data + off, size - off);
        FUZZ_CHECK(n > 0);
        off += (size_t)n;
    }
    FUZZ_CHECK(close(fd) == 0);
}

static void check_loaded(const lt_config_t *cfg)
{
    size_t count;
    const lt_config_key_t *keys = lt_config_keys(&count);
    for (size_t i = 0; i < count; i++)
        if (keys[i].type == LT_CFG_STRING)
            FUZZ_CHECK(*(char *const *)((const char *)cfg + keys[i].offset) != NULL);
    FUZZ_CHECK(cfg->workers >= 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char *const envp[] = {NULL};
    static const lt_config_t zero;
    lt_config_t cfg;
    char err[256];

    write_input(data, size);
    memset(err, 'x', sizeof(err));
    int ret = lt_config_load(&cfg, path, envp, err, sizeof(err));
    FUZZ_CHECK(ret == 0 || ret == LT_EINVAL || ret == LT_EIO);
    if (ret == 0) {
        check_loaded(&cfg);
        lt_config_free(&cfg);
    } else {
        FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL && strncmp(err, "config: ", 8) == 0);
        FUZZ_CHECK(memcmp(&cfg, &zero, sizeof(cfg)) == 0);
    }
    return 0;
}
