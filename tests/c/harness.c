/*
 * C harness for certstore.h: every verb, NULL and invalid arguments, a kubelet-style rotation
 * seen through a subscription and through certstore_get_current(), reload failures,
 * unsubscribe from inside a callback, snapshots held across rotations and past the store.
 * Usage: harness FIXTURE_DIR   (fixtures from gen-certs.sh)
 */
#include "certstore.h"

#include <errno.h>
#include <pthread.h>
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

static const char *fixtures;

static char *read_all(const char *path, size_t *len) {
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

static void fixture_path(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", fixtures, name);
}

/* ---- a faithful kubelet atomic writer ---- */
static int kubelet_version;

static void copy_file(const char *from, const char *to) {
    size_t len;
    char *bytes = read_all(from, &len);
    FILE *f = fopen(to, "wb");
    if (!f || fwrite(bytes, 1, len, f) != len) { perror(to); exit(2); }
    fclose(f);
    free(bytes);
}

static void remove_tree(const char *dir) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) { fprintf(stderr, "rm failed\n"); exit(2); }
}

/* Writes tls.crt from fixture `cert` and tls.key from fixture `key` into dir, atomically. */
static void kubelet_write(const char *dir, const char *cert, const char *key) {
    char stamp[64], path[4096], link_tmp[4096], data[4096], old[4096] = {0}, src[4096];
    snprintf(stamp, sizeof stamp, "..2026_11_24_06_00_00.%09d", ++kubelet_version);
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
    uint64_t last_generation;
    char last_error[1024];
    char last_serial[64];
};

static void record(const certstore_event *event, uintptr_t user_data) {
    struct recorder *r = (struct recorder *)user_data;
    pthread_mutex_lock(&r->lock);
    r->last_generation = event->generation;
    if (event->kind == CERTSTORE_EVENT_ROTATED) {
        r->rotated++;
        snprintf(r->last_serial, sizeof r->last_serial, "%s", certstore_snapshot_serial(event->snapshot));
        if (event->error != NULL || certstore_snapshot_generation(event->snapshot) != event->generation)
            snprintf(r->last_serial, sizeof r->last_serial, "inconsistent event");
    } else {
        r->failed++;
        if (event->snapshot != NULL) snprintf(r->last_serial, sizeof r->last_serial, "snapshot on failure");
        snprintf(r->last_error, sizeof r->last_error, "%s", certstore_error_message(event->error));
    }
    pthread_mutex_unlock(&r->lock);
}

static int recorder_count(struct recorder *r, int failed_events) {
    pthread_mutex_lock(&r->lock);
    int n = failed_events ? r->failed : r->rotated;
    pthread_mutex_unlock(&r->lock);
    return n;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits up to 10 s for `count` events of a kind. */
static int wait_events(struct recorder *r, int failed_events, int count) {
    for (int i = 0; i < 10000; i++) {
        if (recorder_count(r, failed_events) >= count) return 1;
        sleep_ms(1);
    }
    return 0;
}

/* ---- callbacks that act on the store from inside ---- */
struct self_unsubscriber {
    certstore_store *store;
    uint64_t id;
    int calls;
    certstore_code unsubscribe_result;
    certstore_code free_result;
};

static void unsubscribe_self(const certstore_event *event, uintptr_t user_data) {
    (void)event;
    struct self_unsubscriber *s = (struct self_unsubscriber *)user_data;
    s->free_result = certstore_free(s->store); /* refused: we are inside a callback */
    s->unsubscribe_result = certstore_unsubscribe(s->store, s->id);
    __atomic_add_fetch(&s->calls, 1, __ATOMIC_SEQ_CST);
}

static int serial_is(const certstore_snapshot *snap, const char *want) {
    return strcmp(certstore_snapshot_serial(snap), want) == 0;
}

static void test_null_and_invalid_arguments(void) {
    certstore_store *store = (certstore_store *)0x1;
    certstore_error *err = NULL;
    certstore_options opts;
    CHECK(certstore_options_init(&opts, sizeof opts) == CERTSTORE_OK, "init");
    CHECK(certstore_options_init(NULL, sizeof opts) == CERTSTORE_ERR_NULL_ARGUMENT, "init NULL");
    CHECK(certstore_options_init(&opts, CERTSTORE_OPTIONS_V1_SIZE - 1) == CERTSTORE_ERR_INVALID_ARGUMENT,
          "init below v1");
    CHECK(opts.struct_size == sizeof(certstore_options), "struct_size %u", opts.struct_size);
    CHECK(opts.watch && opts.reread_interval_ms == 60000 && opts.max_file_size == 1048576,
          "defaults");

    CHECK(certstore_load(NULL, &store, &err) == CERTSTORE_ERR_NULL_ARGUMENT, "NULL options");
    CHECK(store == NULL, "out_store cleared on failure");
    CHECK(err && strstr(certstore_error_message(err), "options is NULL"), "message");
    certstore_error_free(err);
    CHECK(certstore_load(&opts, NULL, NULL) == CERTSTORE_ERR_NULL_ARGUMENT, "NULL out_store");
    CHECK(certstore_load(&opts, &store, &err) == CERTSTORE_ERR_INVALID_ARGUMENT, "no paths");
    CHECK(strstr(certstore_error_message(err), "cert_path is NULL"), "%s", certstore_error_message(err));
    certstore_error_free(err);

    char cert[4096], key[4096];
    fixture_path(cert, sizeof cert, "a.crt");
    fixture_path(key, sizeof key, "a.key");
    opts.cert_path = cert;
    opts.key_path = key;
    opts.struct_size = 8;
    CHECK(certstore_load(&opts, &store, &err) == CERTSTORE_ERR_INVALID_ARGUMENT, "struct_size");
    certstore_error_free(err);
    certstore_options_init(&opts, sizeof opts);
    opts.cert_path = cert;
    opts.key_path = key;
    opts.validity = 7;
    CHECK(certstore_load(&opts, &store, &err) == CERTSTORE_ERR_INVALID_ARGUMENT, "validity");
    certstore_error_free(err);
    opts.validity = CERTSTORE_VALIDITY_ENFORCE;
    opts.key_path = "/nonexistent/tls.key";
    CHECK(certstore_load(&opts, &store, &err) == CERTSTORE_ERR_LOAD, "missing key");
    CHECK(strstr(certstore_error_message(err), "/nonexistent/tls.key"), "names the file: %s",
          certstore_error_message(err));
    certstore_error_free(err);
    opts.key_path = cert; /* a certificate where the key should be */
    CHECK(certstore_load(&opts, &store, &err) == CERTSTORE_ERR_LOAD, "cert as key");
    CHECK(strstr(certstore_error_message(err), "no PEM PRIVATE KEY"), "%s", certstore_error_message(err));
    certstore_error_free(err);

    certstore_snapshot *snap = (certstore_snapshot *)0x1;
    size_t len = 99;
    uint64_t id;
    certstore_status_info info = {.struct_size = sizeof info};
    CHECK(certstore_get_current(NULL, &snap) == CERTSTORE_ERR_NULL_ARGUMENT && snap == NULL, "gc");
    CHECK(certstore_get_current(NULL, NULL) == CERTSTORE_ERR_NULL_ARGUMENT, "gc2");
    CHECK(certstore_snapshot_cert_pem(NULL, &len) == NULL && len == 0, "pem NULL");
    CHECK(certstore_snapshot_key_pem(NULL, NULL) == NULL, "key NULL");
    CHECK(certstore_snapshot_ca_pem(NULL, NULL) == NULL, "ca NULL");
    CHECK(certstore_snapshot_generation(NULL) == 0, "gen NULL");
    CHECK(certstore_snapshot_not_after(NULL) == 0 && certstore_snapshot_not_before(NULL) == 0, "t");
    CHECK(strcmp(certstore_snapshot_serial(NULL), "") == 0, "serial NULL");
    CHECK(certstore_snapshot_fingerprint_sha256(NULL) == NULL, "fp NULL");
    certstore_snapshot_free(NULL);
    CHECK(certstore_generation(NULL) == 0, "generation NULL");
    CHECK(certstore_reload(NULL, &err) == CERTSTORE_ERR_NULL_ARGUMENT, "reload NULL");
    certstore_error_free(err);
    CHECK(certstore_status(NULL, &info, NULL) == CERTSTORE_ERR_NULL_ARGUMENT, "status NULL");
    CHECK(certstore_subscribe(NULL, record, 0, &id) == CERTSTORE_ERR_NULL_ARGUMENT, "sub NULL");
    CHECK(certstore_unsubscribe(NULL, 1) == CERTSTORE_ERR_NULL_ARGUMENT, "unsub NULL");
    CHECK(certstore_free(NULL) == CERTSTORE_OK, "free NULL");
    CHECK(strcmp(certstore_error_message(NULL), "") == 0, "message NULL");
    certstore_error_free(NULL);
    CHECK(strcmp(certstore_code_name(CERTSTORE_ERR_LOAD), "CERTSTORE_ERR_LOAD") == 0, "name");
    CHECK(strcmp(certstore_code_name(1234), "CERTSTORE_UNKNOWN_CODE") == 0, "unknown name");
    CHECK(strlen(certstore_version()) > 0, "version");
}

static void test_rotation_lifecycle(void) {
    char dir[] = "/tmp/certstore-c-XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); exit(2); }
    kubelet_write(dir, "a.crt", "a.key");

    char cert[4096], key[4096];
    snprintf(cert, sizeof cert, "%s/tls.crt", dir);
    snprintf(key, sizeof key, "%s/tls.key", dir);
    certstore_options opts;
    certstore_options_init(&opts, sizeof opts);
    opts.cert_path = cert;
    opts.key_path = key;
    opts.reread_interval_ms = 0; /* inotify alone must see every swap */
    certstore_store *store = NULL;
    certstore_error *err = NULL;
    certstore_code rc = certstore_load(&opts, &store, &err);
    CHECK(rc == CERTSTORE_OK && store && !err, "load: %s", certstore_error_message(err));
    if (rc != CERTSTORE_OK) { certstore_error_free(err); return; }
    CHECK(certstore_generation(store) == 1, "gen 1");
    const uint64_t *counter = certstore_generation_counter_acquire(store);
    CHECK(counter && __atomic_load_n(counter, __ATOMIC_ACQUIRE) == 1, "counter");
    CHECK(certstore_generation_counter_acquire(NULL) == NULL, "counter NULL");
    certstore_generation_counter_release(NULL);

    certstore_snapshot *first = NULL;
    CHECK(certstore_get_current(store, &first) == CERTSTORE_OK && first, "get_current");
    CHECK(serial_is(first, "1001"), "serial %s", certstore_snapshot_serial(first));
    size_t len = 0, file_len = 0;
    char path[4096];
    fixture_path(path, sizeof path, "a.crt");
    char *a_crt = read_all(path, &file_len);
    const uint8_t *pem = certstore_snapshot_cert_pem(first, &len);
    CHECK(len == file_len && memcmp(pem, a_crt, len) == 0, "cert PEM is the file");
    const uint8_t *key_pem = certstore_snapshot_key_pem(first, &len);
    CHECK(key_pem && len > 0 && memcmp(key_pem, "-----BEGIN", 10) == 0, "key PEM");
    CHECK(certstore_snapshot_ca_pem(first, &len) == NULL && len == 0, "no CA");
    CHECK(certstore_snapshot_not_after(first) > (int64_t)time(NULL), "not expired");
    CHECK(certstore_snapshot_not_before(first) <= (int64_t)time(NULL), "valid now");
    const uint8_t *fp = certstore_snapshot_fingerprint_sha256(first);
    int nonzero = 0;
    for (int i = 0; i < CERTSTORE_SHA256_LEN; i++) nonzero |= fp[i];
    CHECK(nonzero, "fingerprint");

    struct recorder rec = {.lock = PTHREAD_MUTEX_INITIALIZER};
    uint64_t rec_id = 0;
    CHECK(certstore_subscribe(store, NULL, 0, &rec_id) == CERTSTORE_ERR_NULL_ARGUMENT, "NULL cb");
    CHECK(certstore_subscribe(store, record, (uintptr_t)&rec, &rec_id) == CERTSTORE_OK, "sub");
    struct self_unsubscriber self = {.store = store};
    CHECK(certstore_subscribe(store, unsubscribe_self, (uintptr_t)&self, &self.id) == CERTSTORE_OK,
          "sub self");

    /* Rotation 1 (kubelet swap): seen through the subscription and get_current. */
    kubelet_write(dir, "b.crt", "b.key");
    CHECK(wait_events(&rec, 0, 1), "rotation event");
    CHECK(rec.last_generation == 2, "event generation %llu", (unsigned long long)rec.last_generation);
    pthread_mutex_lock(&rec.lock);
    CHECK(strcmp(rec.last_serial, "1002") == 0, "event snapshot serial %s", rec.last_serial);
    pthread_mutex_unlock(&rec.lock);
    certstore_snapshot *second = NULL;
    certstore_get_current(store, &second);
    CHECK(serial_is(second, "1002") && certstore_snapshot_generation(second) == 2, "B served");
    for (int i = 0; i < 10000 && __atomic_load_n(&self.calls, __ATOMIC_SEQ_CST) == 0; i++) sleep_ms(1);
    CHECK(self.calls == 1 && self.unsubscribe_result == CERTSTORE_OK, "unsubscribed itself");
    CHECK(self.free_result == CERTSTORE_ERR_IN_CALLBACK, "free refused in callback");

    /* Rotation 2 and 3: both seen; the self-unsubscriber is not called again. */
    kubelet_write(dir, "c.crt", "c.key");
    CHECK(wait_events(&rec, 0, 2), "second rotation");
    kubelet_write(dir, "a.crt", "a.key");
    CHECK(wait_events(&rec, 0, 3), "third rotation");
    CHECK(__atomic_load_n(&self.calls, __ATOMIC_SEQ_CST) == 1, "no call after unsubscribe (%d)",
          self.calls);
    CHECK(certstore_generation(store) == 4, "gen 4");

    /* The first snapshot is still intact after three rotations. */
    pem = certstore_snapshot_cert_pem(first, &len);
    CHECK(serial_is(first, "1001") && len == file_len && memcmp(pem, a_crt, len) == 0, "held");

    /* A bad rotation: cert c with key a. Refused, reported, last good kept. */
    kubelet_write(dir, "c.crt", "a.key");
    CHECK(wait_events(&rec, 1, 1), "failure event");
    pthread_mutex_lock(&rec.lock);
    CHECK(strstr(rec.last_error, "does not match") && strstr(rec.last_error, "tls.key"), "%s",
          rec.last_error);
    CHECK(rec.last_generation == 4, "failure names served generation");
    CHECK(strcmp(rec.last_serial, "1001") == 0, "no snapshot on failure events: %s", rec.last_serial);
    pthread_mutex_unlock(&rec.lock);
    certstore_snapshot *still = NULL;
    certstore_get_current(store, &still);
    CHECK(serial_is(still, "1001") && certstore_generation(store) == 4, "last good served");
    certstore_snapshot_free(still);

    CHECK(certstore_reload(store, &err) == CERTSTORE_ERR_LOAD && err, "explicit reload refused");
    CHECK(strstr(certstore_error_message(err), "does not match"), "%s", certstore_error_message(err));
    certstore_error_free(err);

    certstore_status_info info = {.struct_size = sizeof info};
    certstore_error *last = NULL;
    CHECK(certstore_status(store, &info, &last) == CERTSTORE_OK, "status");
    CHECK(info.generation == 4 && info.reloads_ok == 4 && info.reloads_failed >= 2,
          "counts %llu %llu %llu", (unsigned long long)info.generation,
          (unsigned long long)info.reloads_ok, (unsigned long long)info.reloads_failed);
    CHECK(info.last_success_unix_ms > 0 && info.last_failure_unix_ms > 0, "times");
    CHECK(last && strstr(certstore_error_message(last), "does not match"), "last error");
    certstore_error_free(last);

    /* Recovery. */
    kubelet_write(dir, "b.crt", "b.key");
    CHECK(wait_events(&rec, 0, 4), "recovered");
    CHECK(certstore_status(store, &info, &last) == CERTSTORE_OK && last == NULL, "error cleared");
    CHECK(certstore_reload(store, &err) == CERTSTORE_OK && err == NULL, "reload unchanged ok");

    CHECK(certstore_unsubscribe(store, 987654) == CERTSTORE_ERR_NOT_FOUND, "unknown id");
    CHECK(certstore_unsubscribe(store, rec_id) == CERTSTORE_OK, "unsubscribe");
    uint64_t served = certstore_generation(store);
    CHECK(served == 5 && __atomic_load_n(counter, __ATOMIC_ACQUIRE) == served, "counter follows");
    CHECK(certstore_free(store) == CERTSTORE_OK, "free");
    CHECK(__atomic_load_n(counter, __ATOMIC_ACQUIRE) == served, "counter outlives the store");
    certstore_generation_counter_release(counter);

    /* Snapshots outlive the store. */
    CHECK(serial_is(second, "1002"), "after free");
    pem = certstore_snapshot_cert_pem(first, &len);
    CHECK(len == file_len && memcmp(pem, a_crt, len) == 0, "held after free");
    certstore_snapshot_free(first);
    certstore_snapshot_free(second);
    free(a_crt);
    remove_tree(dir);
}

static void test_ca_bundle(void) {
    char cert[4096], key[4096], ca[4096];
    fixture_path(cert, sizeof cert, "b.crt");
    fixture_path(key, sizeof key, "b.key");
    fixture_path(ca, sizeof ca, "ca.crt");
    certstore_options opts;
    certstore_options_init(&opts, sizeof opts);
    opts.cert_path = cert;
    opts.key_path = key;
    opts.ca_path = ca;
    opts.watch = 0;
    certstore_store *store = NULL;
    CHECK(certstore_load(&opts, &store, NULL) == CERTSTORE_OK, "load with CA");
    certstore_snapshot *snap = NULL;
    certstore_get_current(store, &snap);
    size_t len = 0, file_len = 0;
    char *ca_bytes = read_all(ca, &file_len);
    const uint8_t *pem = certstore_snapshot_ca_pem(snap, &len);
    CHECK(pem && len == file_len && memcmp(pem, ca_bytes, len) == 0, "CA PEM");
    free(ca_bytes);
    certstore_snapshot_free(snap);
    CHECK(certstore_free(store) == CERTSTORE_OK, "free");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s FIXTURE_DIR\n", argv[0]);
        return 2;
    }
    fixtures = argv[1];
    test_null_and_invalid_arguments();
    test_rotation_lifecycle();
    test_ca_bundle();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
