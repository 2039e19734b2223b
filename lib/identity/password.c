/*
 * password.c: the password policy (see password.h for the contract).
 *
 * Order of checks, cheapest first: byte length, NUL bytes, UTF-8 validity, length in code
 * points (lt_password_policy_quick); then similarity to the email (our own, since
 * libpwquality only compares with the user name, for which we pass the email's local part)
 * and libpwquality (palindromes, cracklib's dictionary and "too simplistic" rules, ...).
 *
 * libpwquality: default settings, never the system's pwquality.conf (the policy must not
 * change with the host). Its own minimum length counts bytes, so it is set as low as it
 * goes and we count code points ourselves. It needs a NUL-terminated string, hence the
 * refusal of NUL bytes. cracklib keeps global state (the open dictionary), so every
 * libpwquality call, for all policies in the process, runs under one mutex.
 *
 * Ownership: the policy owns its libpwquality settings; they are read-only after create.
 * Secrets: the NUL-terminated copies of passwords are wiped before they are freed.
 */
#include "identity/password.h"

#include <ctype.h>
#include <pthread.h>
#include <pwquality.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/hasher.h"

/* libpwquality clamps lower values up to its own floor (6); we count length ourselves. */
#define PWQ_MIN_LENGTH_FLOOR 1
/* Email parts shorter than this are too common inside passwords to mean anything
 * (libpwquality's own threshold for user-name words, PWQ_MIN_WORD_LENGTH). */
#define EMAIL_WORD_MIN 4

struct lt_password_policy {
    int min_length;
    pwquality_settings_t *pwq;
};

static pthread_mutex_t pwq_mutex = PTHREAD_MUTEX_INITIALIZER;

static void set_reason(char *reason, size_t cap, const char *msg)
{
    if (reason != NULL && cap > 0)
        snprintf(reason, cap, "%s", msg);
}

int lt_password_policy_create(int min_length, lt_password_policy_t **out)
{
    lt_password_policy_t *p = NULL;
    void *aux = NULL;
    int rc, ret = LT_ENOMEM;

    if (out == NULL)
        return LT_EINVAL;
    *out = NULL;
    if (min_length < 1 || min_length > LT_PASSWORD_MAX)
        return LT_EINVAL;
    if ((p = calloc(1, sizeof(*p))) == NULL)
        return LT_ENOMEM;
    p->min_length = min_length;
    pthread_mutex_lock(&pwq_mutex);
    if ((p->pwq = pwquality_default_settings()) == NULL)
        goto fail_locked;
    ret = LT_EIO;
    if (pwquality_set_int_value(p->pwq, PWQ_SETTING_MIN_LENGTH, PWQ_MIN_LENGTH_FLOOR) != 0 ||
        pwquality_set_int_value(p->pwq, PWQ_SETTING_DICT_CHECK, 1) != 0 ||
        pwquality_set_int_value(p->pwq, PWQ_SETTING_USER_CHECK, 1) != 0 ||
        /* Off by default in libpwquality; they catch "password1234", "aaaa..." padding. */
        pwquality_set_int_value(p->pwq, PWQ_SETTING_MAX_SEQUENCE, 3) != 0 ||
        pwquality_set_int_value(p->pwq, PWQ_SETTING_MAX_REPEAT, 3) != 0)
        goto fail_locked;
    /*
     * Probe once with a password nothing should refuse: without cracklib's dictionary
     * (package cracklib-runtime) every check would fail with "error loading dictionary",
     * and that is a deployment fault to report at start-up, not a reason to give users.
     */
    rc = pwquality_check(p->pwq, "Tq7#vL2!pZ9@wR4$", NULL, NULL, &aux);
    if (rc < 0) {
        char buf[PWQ_MAX_ERROR_MESSAGE_LEN];
        lt_log(LT_LOG_ERROR, "password", "libpwquality self-check failed: %s",
               pwquality_strerror(buf, sizeof(buf), rc, aux));
        goto fail_locked;
    }
    pthread_mutex_unlock(&pwq_mutex);
    *out = p;
    return 0;
fail_locked:
    pthread_mutex_unlock(&pwq_mutex);
    lt_password_policy_destroy(&p);
    return ret;
}

void lt_password_policy_destroy(lt_password_policy_t **pp)
{
    lt_password_policy_t *p = *pp;
    if (p == NULL)
        return;
    *pp = NULL;
    if (p->pwq != NULL)
        pwquality_free_settings(p->pwq);
    free(p);
}

int lt_password_policy_quick(const lt_password_policy_t *p, const char *password, size_t n, char *reason, size_t cap)
{
    long cps;
    if (p == NULL || (password == NULL && n > 0)) {
        set_reason(reason, cap, "The password could not be checked.");
        return LT_EINVAL;
    }
    if (n > LT_PASSWORD_MAX) {
        char msg[96];
        snprintf(msg, sizeof(msg), "The password must be at most %d bytes long.", LT_PASSWORD_MAX);
        set_reason(reason, cap, msg);
        return LT_EINVAL;
    }
    if (n > 0 && memchr(password, '\0', n) != NULL) {
        set_reason(reason, cap, "The password must not contain NUL characters.");
        return LT_EINVAL;
    }
    if ((cps = lt_utf8_count(password, n)) < 0) {
        set_reason(reason, cap, "The password is not valid UTF-8 text.");
        return LT_EINVAL;
    }
    if (cps < p->min_length) {
        char msg[96];
        snprintf(msg, sizeof(msg), "The password must be at least %d characters long.", p->min_length);
        set_reason(reason, cap, msg);
        return LT_EINVAL;
    }
    return 0;
}

/* ASCII lower-case copy (passwords and emails compare case-insensitively here, as in
 * libpwquality); NULL on allocation failure. */
static char *lower_dup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        d[i] = (char)tolower((unsigned char)s[i]);
    d[n] = '\0';
    return d;
}

/* Does `hay` contain `word` (wn < 256 bytes), forwards or backwards? */
static int contains_either_way(const char *hay, const char *word, size_t wn)
{
    char rev[256];
    size_t hn = strlen(hay);
    if (memmem(hay, hn, word, wn) != NULL)
        return 1;
    for (size_t i = 0; i < wn; i++)
        rev[i] = word[wn - 1 - i];
    return memmem(hay, hn, rev, wn) != NULL;
}

/*
 * The email check libpwquality lacks: the password must not contain the whole address,
 * nor any word of its local part (split at . _ - +) of EMAIL_WORD_MIN or more characters,
 * forwards or backwards. libpwquality compares with the whole local part only.
 */
static int similar_to_email(const char *pw_lower, const char *email_lower)
{
    const char *at = strrchr(email_lower, '@');
    size_t local_len = at != NULL ? (size_t)(at - email_lower) : strlen(email_lower);
    size_t start = 0;

    if (strlen(email_lower) >= EMAIL_WORD_MIN && strstr(pw_lower, email_lower) != NULL)
        return 1;
    for (size_t i = 0; i <= local_len; i++) {
        if (i == local_len || strchr("._-+", email_lower[i]) != NULL) {
            size_t wn = i - start;
            if (wn >= EMAIL_WORD_MIN) {
                if (wn < 256 && contains_either_way(pw_lower, email_lower + start, wn))
                    return 1;
            }
            start = i + 1;
        }
    }
    return 0;
}

/*
 * 1 when the password's ASCII letters alone (leetspeak digits read as letters) make a
 * word cracklib knows, and the password was more than that word. Caller holds pwq_mutex.
 */
static int word_core_is_dictionary(const lt_password_policy_t *p, const char *pw_lower, size_t n)
{
    static const char leet_from[] = "0134@$5!7", leet_to[] = "oieaassit";
    char core[LT_PASSWORD_MAX + 1];
    size_t k = 0, letters = 0;
    int other = 0;
    for (size_t i = 0; i < n; i++) {
        char c = pw_lower[i];
        const char *l = c != '\0' ? strchr(leet_from, c) : NULL;
        if (c >= 'a' && c <= 'z')
            core[k++] = c, letters++;
        else if (l != NULL)
            core[k++] = leet_to[l - leet_from], other = 1;
        else
            other = 1;
    }
    core[k] = '\0';
    int hit = 0;
    if (other && letters >= 4 && k >= 6 && k <= 32) {
        void *aux = NULL;
        /* Only the dictionary verdicts count here: the core of a random password may well
         * be "too short" or "too simple" for cracklib, which says nothing about it. */
        hit = pwquality_check(p->pwq, core, NULL, NULL, &aux) == PWQ_ERROR_CRACKLIB_CHECK && aux != NULL &&
              strstr((const char *)aux, "dictionary word") != NULL;
    }
    lt_wipe(core, sizeof(core));
    return hit;
}

int lt_password_policy_check(const lt_password_policy_t *p, const char *password, size_t n, const char *email,
                             char *reason, size_t cap)
{
    char *pw = NULL, *pw_lower = NULL, *email_lower = NULL, *user = NULL;
    void *aux = NULL;
    int ret, rc;

    if ((ret = lt_password_policy_quick(p, password, n, reason, cap)) != 0)
        return ret;
    ret = LT_EINVAL;
    if ((pw = malloc(n + 1)) == NULL || (pw_lower = lower_dup(password, n)) == NULL)
        goto oom;
    memcpy(pw, password, n);
    pw[n] = '\0';
    if (email != NULL && *email != '\0') {
        const char *at = strrchr(email, '@');
        size_t elen = strlen(email);
        if ((email_lower = lower_dup(email, elen)) == NULL ||
            (user = strndup(email, at != NULL ? (size_t)(at - email) : elen)) == NULL)
            goto oom;
        if (similar_to_email(pw_lower, email_lower)) {
            set_reason(reason, cap, "The password is too similar to your email address.");
            goto out;
        }
    }

    pthread_mutex_lock(&pwq_mutex);
    rc = pwquality_check(p->pwq, pw, NULL, user, &aux);
    if (rc < 0) {
        char buf[PWQ_MAX_ERROR_MESSAGE_LEN];
        const char *msg = pwquality_strerror(buf, sizeof(buf), rc, aux);
        if (rc == PWQ_ERROR_MEM_ALLOC) {
            pthread_mutex_unlock(&pwq_mutex);
            goto oom;
        }
        char sentence[PWQ_MAX_ERROR_MESSAGE_LEN + 2];
        size_t ml = strlen(msg);
        /* libpwquality's messages have no final full stop; our reasons are sentences */
        snprintf(sentence, sizeof(sentence), "%s%s", msg, ml > 0 && msg[ml - 1] != '.' ? "." : "");
        set_reason(reason, cap, sentence);
        pthread_mutex_unlock(&pwq_mutex);
        goto out;
    }
    /* cracklib forgives a dictionary word padded with digits and symbols ("password2020",
     * "P@ss-word!!"); ask it about the letters alone as well. */
    if (word_core_is_dictionary(p, pw_lower, n)) {
        pthread_mutex_unlock(&pwq_mutex);
        set_reason(reason, cap, "The password is a dictionary word with digits or symbols added.");
        goto out;
    }
    pthread_mutex_unlock(&pwq_mutex);
    ret = 0;
    goto out;
oom:
    set_reason(reason, cap, "The password could not be checked.");
    ret = LT_ENOMEM;
out:
    if (pw != NULL) {
        lt_wipe(pw, n);
        free(pw);
    }
    if (pw_lower != NULL) {
        lt_wipe(pw_lower, n);
        free(pw_lower);
    }
    free(email_lower);
    free(user);
    return ret;
}

int lt_password_policy_hasher_check(const char *password, size_t n, const char *context, char *reason, size_t cap,
                                    void *data)
{
    return lt_password_policy_check(data, password, n, context, reason, cap) != 0;
}
