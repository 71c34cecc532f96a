/*
 * What the C test programs share: CHECK, file helpers, a faithful kubelet atomic writer and
 * a subscription recorder. Include it after certstore.h (the current one or the frozen v1
 * copy: it uses only what both declare). Everything is static inline, so a program that
 * uses part of it compiles without unused-function warnings.
 */
#ifndef CERTSTORE_TESTUTIL_H
#define CERTSTORE_TESTUTIL_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int passed, failed;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (cond) {                                                             \
            passed++;                                                           \
        } else {                                                                \
            failed++;                                                           \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
        }                                                                       \
    } while (0)

/* The fixture directory written by gen-certs.sh (argv[1] of every program). */
static const char *fixtures;

static inline char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(2); }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) { perror(path); exit(2); }
    fclose(f);
    buf[n] = 0;
    *len = (size_t)n;
    return buf;
}

static inline void fixture_path(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", fixtures, name);
}

/* The contents of fixture `name` as a NUL-terminated string; free() it. */
static inline char *read_fixture(const char *name, size_t *len) {
    char path[4096];
    fixture_path(path, sizeof path, name);
    return read_all(path, len);
}

static inline void copy_file(const char *from, const char *to) {
    size_t len;
    char *bytes = read_all(from, &len);
    FILE *f = fopen(to, "wb");
    if (!f || fwrite(bytes, 1, len, f) != len) { perror(to); exit(2); }
    fclose(f);
    free(bytes);
}

static inline void remove_tree(const char *dir) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) { fprintf(stderr, "rm failed\n"); exit(2); }
}

static inline void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A fresh temporary directory; remove_tree() it. */
static inline void make_temp_dir(char *out, size_t cap) {
    snprintf(out, cap, "/tmp/certstore-c-XXXXXX");
    if (!mkdtemp(out)) { perror("mkdtemp"); exit(2); }
}

/*
 * The kubelet's AtomicWriter: the files go into a new timestamped directory, ..data is
 * re-pointed with a rename, the visible names are symlinks through ..data, and the old
 * directory is removed last. Writes tls.crt from fixture `cert` and tls.key from `key`.
 */
static inline void kubelet_write(const char *dir, const char *cert, const char *key) {
    static int version;
    char stamp[64], path[4096], link_tmp[4096], data[4096], old[4096] = {0}, src[4096];
    snprintf(stamp, sizeof stamp, "..2026_11_24_06_00_00.%09d", ++version);
    snprintf(path, sizeof path, "%s/%s", dir, stamp);
    if (mkdir(path, 0755) != 0) { perror(path); exit(2); }
    const char *names[2] = {"tls.crt", "tls.key"};
    const char *from[2] = {cert, key};
    for (int i = 0; i < 2; i++) {
        char dst[4096];
        fixture_path(src, sizeof src, from[i]);
        snprintf(dst, sizeof dst, "%s/%s", path, names[i]);
        copy_file(src, dst);
    }
    snprintf(data, sizeof data, "%s/..data", dir);
    ssize_t n = readlink(data, old, sizeof old - 1);
    snprintf(link_tmp, sizeof link_tmp, "%s/..data_tmp", dir);
    unlink(link_tmp);
    if (symlink(stamp, link_tmp) != 0 || rename(link_tmp, data) != 0) { perror("swap"); exit(2); }
    for (int i = 0; i < 2; i++) {
        char visible[4096], target[64];
        snprintf(visible, sizeof visible, "%s/%s", dir, names[i]);
        snprintf(target, sizeof target, "..data/%s", names[i]);
        struct stat st;
        if (lstat(visible, &st) != 0 && symlink(target, visible) != 0) { perror(visible); exit(2); }
    }
    if (n > 0) {
        char old_dir[4096];
        snprintf(old_dir, sizeof old_dir, "%s/%.*s", dir, (int)n, old);
        remove_tree(old_dir);
    }
}

/* ---- subscription recorder ---- */
struct recorder {
    pthread_mutex_t lock;
    int rotated, failed;
    int last_reason; /* certstore_error_reason() of the last RELOAD_FAILED */
    uint64_t last_generation;
    char last_error[1024];
    char last_serial[64];
};

static inline void record(const certstore_event *event, uintptr_t user_data) {
    struct recorder *r = (struct recorder *)user_data;
    pthread_mutex_lock(&r->lock);
    r->last_generation = event->generation;
    if (event->kind == CERTSTORE_EVENT_ROTATED) {
        r->rotated++;
        snprintf(r->last_serial, sizeof r->last_serial, "%s", certstore_snapshot_serial(event->snapshot));
        if (event->error != NULL || certstore_snapshot_generation(event->snapshot) != event->generation)
            snprintf(r->last_serial, sizeof r->last_serial, "inconsistent event");
    } else if (event->kind == CERTSTORE_EVENT_RELOAD_FAILED) {
        r->failed++;
        if (event->snapshot != NULL) snprintf(r->last_serial, sizeof r->last_serial, "snapshot on failure");
        snprintf(r->last_error, sizeof r->last_error, "%s", certstore_error_message(event->error));
        r->last_reason = (int)certstore_error_reason(event->error);
    }
    pthread_mutex_unlock(&r->lock);
}

static inline int recorder_count(struct recorder *r, int failed_events) {
    pthread_mutex_lock(&r->lock);
    int n = failed_events ? r->failed : r->rotated;
    pthread_mutex_unlock(&r->lock);
    return n;
}

/* Waits up to 10 s for `count` events of a kind (a bound against hanging, not a timing). */
static inline int wait_events(struct recorder *r, int failed_events, int count) {
    for (int i = 0; i < 10000; i++) {
        if (recorder_count(r, failed_events) >= count) return 1;
        sleep_ms(1);
    }
    return 0;
}

#endif /* CERTSTORE_TESTUTIL_H */
