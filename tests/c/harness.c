/*
 * C harness for certstore.h: every verb, NULL and invalid arguments, a kubelet-style rotation
 * seen through a subscription and through certstore_get_current(), reload failures,
 * unsubscribe from inside a callback, snapshots held across rotations and past the store;
 * caller-sized options and status (smaller, bigger, padding), refusal reasons, served-vs-disk
 * status, snapshot references taken in a callback, subscription ids of other stores, PEM
 * derived from the validated DER, relative paths after chdir, and a generation that never
 * goes backwards for a thread. (compat_v1.c is the program built against the v1 header.)
 * Usage: harness FIXTURE_DIR   (fixtures from gen-certs.sh)
 */
#include "certstore.h"
#include "testutil.h"

#include <limits.h>
#include <sched.h>
#include <stddef.h>

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

/* ---- the ABI added for v1: sizes, reasons, served-vs-disk, snapshot references ---- */

static int all_bytes(const unsigned char *p, size_t n, unsigned char value) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != value) return 0;
    return 1;
}

static int64_t fixture_int(const char *name) {
    size_t len;
    char *text = read_fixture(name, &len);
    int64_t v = strtoll(text, NULL, 10);
    free(text);
    return v;
}

typedef const uint8_t *(*pem_accessor)(const certstore_snapshot *, size_t *);

/* The snapshot's cert/key/CA PEM (`get`) equals fixture `name` (canonical PEM from openssl). */
static int pem_is(pem_accessor get, const certstore_snapshot *snap, const char *name) {
    size_t len, want_len;
    const uint8_t *pem = get(snap, &len);
    char *want = read_fixture(name, &want_len);
    int same = pem != NULL && len == want_len && memcmp(pem, want, len) == 0;
    free(want);
    return same;
}

static certstore_code load_files(const char *cert, const char *key, const char *ca,
                                 certstore_store **store, certstore_error **err) {
    char cert_path[4096], key_path[4096], ca_path[4096];
    fixture_path(cert_path, sizeof cert_path, cert);
    fixture_path(key_path, sizeof key_path, key);
    certstore_options opts;
    certstore_options_init(&opts, sizeof opts);
    opts.cert_path = cert_path;
    opts.key_path = key_path;
    if (ca) {
        fixture_path(ca_path, sizeof ca_path, ca);
        opts.ca_path = ca_path;
    }
    opts.watch = 0;
    opts.reread_interval_ms = 0;
    return certstore_load(&opts, store, err);
}

static void test_options_init_sizes(void) {
    _Alignas(8) unsigned char buf[4200];
    certstore_options *o = (certstore_options *)buf;
    memset(buf, 0xAA, sizeof buf);
    CHECK(certstore_options_init(o, CERTSTORE_OPTIONS_V1_SIZE - 1) == CERTSTORE_ERR_INVALID_ARGUMENT, "< v1");
    CHECK(certstore_options_init(o, 4097) == CERTSTORE_ERR_INVALID_ARGUMENT, "> 4096");
    CHECK(all_bytes(buf, sizeof buf, 0xAA), "a refused init writes nothing");

    /* A newer header's bigger struct: its size is stored, the tail this library does not
     * know is zeroed, and no byte past the declared size is written. */
    const size_t big = sizeof(certstore_options) + 24;
    CHECK(certstore_options_init(o, big) == CERTSTORE_OK, "init bigger");
    CHECK(o->struct_size == big, "struct_size %u, want %zu", o->struct_size, big);
    CHECK(all_bytes(buf + sizeof(certstore_options), 24, 0), "unknown tail zeroed");
    CHECK(all_bytes(buf + big, sizeof buf - big, 0xAA), "nothing written past the declared size");
    CHECK(o->watch == 1 && o->reread_interval_ms == 60000 && o->max_file_size == 1048576 &&
          o->validity == CERTSTORE_VALIDITY_ENFORCE && !o->cert_path && !o->key_path && !o->ca_path,
          "defaults in a bigger struct");
    /* The padding too: a v1 program's bytes 52..56 are where a naturally appended 4-byte
     * field of a later version would sit, and struct_size (56) could not tell them apart. */
    const size_t pad_end = offsetof(certstore_options, cert_path);
    const size_t tail_pad = offsetof(certstore_options, validity) + sizeof o->validity;
    CHECK(all_bytes(buf + sizeof o->struct_size, pad_end - sizeof o->struct_size, 0) &&
          all_bytes(buf + tail_pad, sizeof(certstore_options) - tail_pad, 0),
          "padding bytes zeroed by options_init");
    memset(buf, 0xAA, sizeof buf);
    CHECK(certstore_options_init(o, 4096) == CERTSTORE_OK && o->struct_size == 4096, "4096");
    CHECK(all_bytes(buf + 4096, sizeof buf - 4096, 0xAA), "nothing past 4096");

    /* What a newer program passes to this library: accepted while the unknown tail is zero. */
    char cert[4096], key[4096];
    fixture_path(cert, sizeof cert, "a.crt");
    fixture_path(key, sizeof key, "a.key");
    certstore_options_init(o, big);
    o->cert_path = cert;
    o->key_path = key;
    o->watch = 0;
    certstore_store *store = NULL;
    certstore_error *err = NULL;
    CHECK(certstore_load(o, &store, &err) == CERTSTORE_OK, "zero tail loads: %s", certstore_error_message(err));
    certstore_error_free(err);
    certstore_free(store);
    buf[big - 1] = 1;
    CHECK(certstore_load(o, &store, &err) == CERTSTORE_ERR_INVALID_ARGUMENT && !store, "non-zero tail refused");
    CHECK(strstr(certstore_error_message(err), "does not know"), "%s", certstore_error_message(err));
    CHECK(certstore_error_reason(err) == CERTSTORE_REASON_OTHER, "reason of an options error");
    certstore_error_free(err);

    /* No size limit at all: UINT64_MAX must not wrap to 0 ("is empty"). */
    certstore_options_init(o, sizeof *o);
    o->cert_path = cert;
    o->key_path = key;
    o->watch = 0;
    o->max_file_size = UINT64_MAX;
    CHECK(certstore_load(o, &store, &err) == CERTSTORE_OK, "max_file_size UINT64_MAX: %s",
          certstore_error_message(err));
    certstore_error_free(err);
    certstore_free(store);
}

static void test_load_failure_reasons(void) {
    const struct {
        const char *cert, *key;
        certstore_reason reason;
        const char *names; /* the file the message must name */
    } cases[] = {
        {"e.crt", "e.key", CERTSTORE_REASON_EXPIRED, "e.crt"},
        {"f.crt", "f.key", CERTSTORE_REASON_NOT_YET_VALID, "f.crt"},
        {"c.crt", "a.key", CERTSTORE_REASON_KEY_MISMATCH, "a.key"},
        {"missing.crt", "a.key", CERTSTORE_REASON_MISSING, "missing.crt"},
        {"a.crt", "a.crt", CERTSTORE_REASON_PARSE_ERROR, "a.crt"},
        {".", "a.key", CERTSTORE_REASON_NOT_REGULAR_FILE, fixtures},
    };
    /* An X.509 v1 leaf is a certificate problem: name the certificate file, not the key. */
    {
        certstore_store *store = NULL;
        certstore_error *err = NULL;
        CHECK(load_files("g.crt", "g.key", NULL, &store, &err) == CERTSTORE_ERR_LOAD, "X.509 v1 leaf refused");
        CHECK(strstr(certstore_error_message(err), "g.crt") && !strstr(certstore_error_message(err), "g.key") &&
              certstore_error_reason(err) != CERTSTORE_REASON_UNSUPPORTED_KEY,
              "X.509 v1 leaf blamed on the key: %s (reason %s)", certstore_error_message(err),
              certstore_reason_name(certstore_error_reason(err)));
        certstore_error_free(err);
        certstore_free(store);
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        certstore_store *store = (certstore_store *)0x1;
        certstore_error *err = NULL;
        certstore_code rc = load_files(cases[i].cert, cases[i].key, NULL, &store, &err);
        CHECK(rc == CERTSTORE_ERR_LOAD && store == NULL, "%s: %s", cases[i].cert, certstore_code_name(rc));
        CHECK(certstore_error_reason(err) == cases[i].reason, "%s/%s: reason %s, want %s", cases[i].cert,
              cases[i].key, certstore_reason_name(certstore_error_reason(err)),
              certstore_reason_name(cases[i].reason));
        CHECK(strstr(certstore_error_message(err), cases[i].names), "%s", certstore_error_message(err));
        certstore_error_free(err);
    }

    char cert[4096], key[4096];
    fixture_path(cert, sizeof cert, "a.crt");
    fixture_path(key, sizeof key, "a.key");
    certstore_options opts;
    certstore_options_init(&opts, sizeof opts);
    opts.cert_path = cert;
    opts.key_path = key;
    opts.watch = 0;
    opts.max_file_size = 10;
    certstore_store *store = NULL;
    certstore_error *err = NULL;
    CHECK(certstore_load(&opts, &store, &err) == CERTSTORE_ERR_LOAD, "too large");
    CHECK(certstore_error_reason(err) == CERTSTORE_REASON_TOO_LARGE, "reason %s",
          certstore_reason_name(certstore_error_reason(err)));
    certstore_error_free(err);
    CHECK(certstore_error_reason(NULL) == CERTSTORE_REASON_NONE, "reason of NULL");

    /* A newline or a non-UTF-8 byte in a path is escaped: the message stays one valid line. */
    char odd[4096];
    snprintf(odd, sizeof odd, "%s/new\nline\xff.crt", fixtures);
    opts.cert_path = odd;
    opts.max_file_size = 1048576;
    CHECK(certstore_load(&opts, &store, &err) == CERTSTORE_ERR_LOAD, "odd path");
    const char *msg = certstore_error_message(err);
    CHECK(!strchr(msg, '\n') && !strchr(msg, '\xff') && strstr(msg, "new\\x0aline\\xff.crt"), "escaped: %s", msg);
    CHECK(certstore_error_reason(err) == CERTSTORE_REASON_MISSING, "odd path reason");
    certstore_error_free(err);
    opts.cert_path = cert;

    /* The expired leaf is served when the policy says so. */
    fixture_path(cert, sizeof cert, "e.crt");
    fixture_path(key, sizeof key, "e.key");
    opts.max_file_size = 1048576;
    opts.validity = CERTSTORE_VALIDITY_IGNORE;
    CHECK(certstore_load(&opts, &store, &err) == CERTSTORE_OK, "expired with IGNORE: %s", certstore_error_message(err));
    certstore_error_free(err);
    certstore_snapshot *snap = NULL;
    certstore_get_current(store, &snap);
    CHECK(serial_is(snap, "1004") && certstore_snapshot_not_after(snap) < (int64_t)time(NULL), "expired leaf");
    certstore_snapshot_free(snap);
    certstore_free(store);

    static const char *names[] = {"none", "key_mismatch", "expired", "not_yet_valid", "encrypted_key",
                                  "unsupported_key", "parse_error", "too_large", "not_regular_file",
                                  "missing", "io_error", "other"};
    for (int r = 0; r <= CERTSTORE_REASON_OTHER; r++)
        CHECK(strcmp(certstore_reason_name(r), names[r]) == 0, "reason %d: %s", r, certstore_reason_name(r));
    CHECK(strcmp(certstore_reason_name(CERTSTORE_REASON_OTHER + 1), "unknown") == 0, "unknown reason");
    CHECK(strcmp(certstore_reason_name(-1), "unknown") == 0, "negative reason");
}

/* Polls status until disk_differs is `want` (10 s bound against hanging). */
static int wait_disk_differs(certstore_store *store, int want) {
    for (int i = 0; i < 10000; i++) {
        certstore_status_info info = {.struct_size = sizeof info};
        if (certstore_status(store, &info, NULL) == CERTSTORE_OK && info.disk_differs == want) return 1;
        sleep_ms(1);
    }
    return 0;
}

static void test_disk_status(void) {
    char dir[64], cert[4096], key[4096];
    make_temp_dir(dir, sizeof dir);
    kubelet_write(dir, "a.crt", "a.key");
    snprintf(cert, sizeof cert, "%s/tls.crt", dir);
    snprintf(key, sizeof key, "%s/tls.key", dir);
    certstore_options opts;
    certstore_options_init(&opts, sizeof opts);
    opts.cert_path = cert;
    opts.key_path = key;
    opts.reread_interval_ms = 0;
    certstore_store *store = NULL;
    if (certstore_load(&opts, &store, NULL) != CERTSTORE_OK) { CHECK(0, "load"); return; }
    struct recorder rec = {.lock = PTHREAD_MUTEX_INITIALIZER};
    uint64_t id;
    certstore_subscribe(store, record, (uintptr_t)&rec, &id);

    certstore_status_info info = {.struct_size = sizeof info};
    certstore_error *last = (certstore_error *)0x1;
    CHECK(certstore_status(store, &info, &last) == CERTSTORE_OK && last == NULL, "status");
    CHECK(info.struct_size == sizeof info, "struct_size %u", info.struct_size);
    CHECK(info.disk_differs == 0 && info.disk_reason == CERTSTORE_REASON_NONE &&
          info.disk_differs_since_unix_ms == 0 && !info.watch_degraded, "agree after load");
    CHECK(info.not_after_unix == fixture_int("a.notafter"), "served notAfter");

    /* A refused rotation: c's certificate with a's key, written kubelet-style. */
    kubelet_write(dir, "c.crt", "a.key");
    CHECK(wait_events(&rec, 1, 1), "refusal event");
    pthread_mutex_lock(&rec.lock);
    CHECK(rec.last_reason == CERTSTORE_REASON_KEY_MISMATCH, "event reason %s", certstore_reason_name(rec.last_reason));
    pthread_mutex_unlock(&rec.lock);
    CHECK(certstore_status(store, &info, &last) == CERTSTORE_OK, "status");
    CHECK(info.generation == 1, "still generation 1");
    CHECK(info.disk_differs == 1, "disk differs");
    CHECK(info.disk_reason == CERTSTORE_REASON_KEY_MISMATCH, "disk_reason %s",
          certstore_reason_name(info.disk_reason));
    CHECK(strcmp(info.disk_serial, "1003") == 0, "disk_serial '%.48s'", info.disk_serial);
    CHECK(info.disk_not_after_unix == fixture_int("c.notafter"), "disk_not_after %lld",
          (long long)info.disk_not_after_unix);
    CHECK(info.disk_differs_since_unix_ms > 0 && info.disk_differs_since_unix_ms <= (int64_t)time(NULL) * 1000 + 1000,
          "since %lld", (long long)info.disk_differs_since_unix_ms);
    CHECK(info.not_after_unix == fixture_int("a.notafter"), "served notAfter kept");
    CHECK(last && certstore_error_reason(last) == CERTSTORE_REASON_KEY_MISMATCH, "last error reason %s",
          certstore_reason_name(certstore_error_reason(last)));
    certstore_error_free(last);

    /* A v1 caller's struct: exactly CERTSTORE_STATUS_INFO_V1_SIZE bytes filled, none past. */
    _Alignas(8) unsigned char buf[512];
    memset(buf, 0xAA, sizeof buf);
    memcpy(buf, &(uint32_t){CERTSTORE_STATUS_INFO_V1_SIZE}, 4);
    CHECK(certstore_status(store, (certstore_status_info *)buf, NULL) == CERTSTORE_OK, "v1 status");
    CHECK(((certstore_status_info *)buf)->struct_size == CERTSTORE_STATUS_INFO_V1_SIZE &&
          ((certstore_status_info *)buf)->generation == 1, "v1 fields");
    CHECK(all_bytes(buf + CERTSTORE_STATUS_INFO_V1_SIZE, sizeof buf - CERTSTORE_STATUS_INFO_V1_SIZE, 0xAA),
          "nothing past a v1 status");
    /* A newer caller's bigger struct: ours filled, the rest of the declared size zeroed. */
    memset(buf, 0xAA, sizeof buf);
    memcpy(buf, &(uint32_t){sizeof info + 16}, 4);
    CHECK(certstore_status(store, (certstore_status_info *)buf, NULL) == CERTSTORE_OK, "bigger status");
    CHECK(((certstore_status_info *)buf)->struct_size == sizeof info, "filled %u",
          ((certstore_status_info *)buf)->struct_size);
    /* Every byte the library fills is a named field: no library stack bytes (pointers) leak
     * out through padding, and the reserved fields come back zero. */
    CHECK(((certstore_status_info *)buf)->_reserved0 == 0 && ((certstore_status_info *)buf)->_reserved1 == 0,
          "status reserved fields zeroed");
    CHECK(all_bytes(buf + sizeof info, 16, 0) && all_bytes(buf + sizeof info + 16, sizeof buf - sizeof info - 16, 0xAA),
          "unknown tail zeroed, nothing past it");
    memset(buf, 0xAA, sizeof buf);
    memcpy(buf, &(uint32_t){CERTSTORE_STATUS_INFO_V1_SIZE - 1}, 4);
    CHECK(certstore_status(store, (certstore_status_info *)buf, NULL) == CERTSTORE_ERR_INVALID_ARGUMENT, "< v1");
    CHECK(all_bytes(buf + 4, sizeof buf - 4, 0xAA), "a refused status writes nothing");

    /* The served files come back: the disk agrees again. */
    kubelet_write(dir, "a.crt", "a.key");
    CHECK(wait_disk_differs(store, 0), "disk agrees again");
    CHECK(certstore_status(store, &info, &last) == CERTSTORE_OK && last == NULL, "no last error");
    CHECK(info.disk_reason == CERTSTORE_REASON_NONE && info.disk_differs_since_unix_ms == 0, "reason cleared");
    certstore_unsubscribe(store, id);
    certstore_free(store);
    remove_tree(dir);
}

struct keeper {
    pthread_mutex_t lock;
    certstore_snapshot *kept;
    int events, ref_was_same;
};

static void keep_first(const certstore_event *event, uintptr_t user_data) {
    struct keeper *k = (struct keeper *)user_data;
    if (event->kind != CERTSTORE_EVENT_ROTATED) return;
    pthread_mutex_lock(&k->lock);
    if (k->kept == NULL) {
        k->kept = certstore_snapshot_ref(event->snapshot);
        k->ref_was_same = k->kept == event->snapshot;
    }
    k->events++;
    pthread_mutex_unlock(&k->lock);
}

static void test_snapshot_ref(void) {
    char dir[64], cert[4096], key[4096];
    make_temp_dir(dir, sizeof dir);
    kubelet_write(dir, "a.crt", "a.key");
    snprintf(cert, sizeof cert, "%s/tls.crt", dir);
    snprintf(key, sizeof key, "%s/tls.key", dir);
    certstore_options opts;
    certstore_options_init(&opts, sizeof opts);
    opts.cert_path = cert;
    opts.key_path = key;
    opts.reread_interval_ms = 0;
    certstore_store *store = NULL;
    if (certstore_load(&opts, &store, NULL) != CERTSTORE_OK) { CHECK(0, "load"); return; }
    CHECK(certstore_snapshot_ref(NULL) == NULL, "ref NULL");

    /* A reference taken on a snapshot from get_current outlives the original's release. */
    certstore_snapshot *first = NULL;
    certstore_get_current(store, &first);
    certstore_snapshot *again = certstore_snapshot_ref(first);
    CHECK(again == first, "ref returns the snapshot");
    certstore_snapshot_free(first);
    CHECK(serial_is(again, "1001"), "after the original is released");

    struct keeper k = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct recorder rec = {.lock = PTHREAD_MUTEX_INITIALIZER};
    uint64_t kid, rid;
    certstore_subscribe(store, keep_first, (uintptr_t)&k, &kid);
    certstore_subscribe(store, record, (uintptr_t)&rec, &rid);
    /* The keeper keeps generation 2 (b); three later rotations replace it in the store. */
    static const char *names[4][2] = {{"b.crt", "b.key"}, {"c.crt", "c.key"}, {"a.crt", "a.key"}, {"c.crt", "c.key"}};
    for (int i = 0; i < 4; i++) {
        kubelet_write(dir, names[i][0], names[i][1]);
        CHECK(wait_events(&rec, 0, i + 1), "rotation %d", i + 1);
        if (i == 0) { /* the event's snapshot is the store's own, not a copy */
            certstore_snapshot *current = NULL;
            certstore_get_current(store, &current);
            pthread_mutex_lock(&k.lock);
            CHECK(current && current == k.kept, "get_current hands out the event's snapshot");
            pthread_mutex_unlock(&k.lock);
            certstore_snapshot_free(current);
        }
    }
    CHECK(certstore_generation(store) == 5, "generation %llu", (unsigned long long)certstore_generation(store));
    pthread_mutex_lock(&k.lock);
    certstore_snapshot *kept = k.kept;
    pthread_mutex_unlock(&k.lock);
    CHECK(kept && k.ref_was_same, "ref taken in the callback");
    CHECK(certstore_snapshot_generation(kept) == 2 && serial_is(kept, "1002"), "kept generation %llu, serial %s",
          (unsigned long long)certstore_snapshot_generation(kept), certstore_snapshot_serial(kept));
    CHECK(pem_is(certstore_snapshot_cert_pem, kept, "b.crt"), "kept PEM after rotations");
    certstore_unsubscribe(store, kid);
    certstore_unsubscribe(store, rid);
    CHECK(certstore_free(store) == CERTSTORE_OK, "free");
    CHECK(serial_is(kept, "1002") && certstore_snapshot_generation(kept) == 2, "kept after free");
    CHECK(pem_is(certstore_snapshot_cert_pem, kept, "b.crt"), "kept PEM after free");
    CHECK(serial_is(again, "1001"), "get_current reference after free");
    certstore_snapshot_free(kept);
    certstore_snapshot_free(again);
    remove_tree(dir);
}

/* Runs first: no subscription exists in the process yet, so id 1 was never handed out. */
static void test_unsubscribe_foreign_ids(void) {
    certstore_store *a = NULL, *b = NULL;
    CHECK(load_files("a.crt", "a.key", NULL, &a, NULL) == CERTSTORE_OK, "load a");
    CHECK(load_files("b.crt", "b.key", NULL, &b, NULL) == CERTSTORE_OK, "load b");
    if (!a || !b) return;
    CHECK(certstore_unsubscribe(a, 1) == CERTSTORE_ERR_NOT_FOUND, "id 1 never handed out");
    CHECK(certstore_unsubscribe(a, 0) == CERTSTORE_ERR_NOT_FOUND, "id 0");
    CHECK(certstore_unsubscribe(a, UINT64_MAX) == CERTSTORE_ERR_NOT_FOUND, "id max");
    struct recorder rec = {.lock = PTHREAD_MUTEX_INITIALIZER};
    uint64_t id_a = 0, id_b = 0;
    CHECK(certstore_subscribe(a, record, (uintptr_t)&rec, &id_a) == CERTSTORE_OK, "sub a");
    CHECK(certstore_subscribe(b, record, (uintptr_t)&rec, &id_b) == CERTSTORE_OK, "sub b");
    CHECK(id_a != id_b, "distinct ids");
    CHECK(certstore_unsubscribe(b, id_a) == CERTSTORE_ERR_NOT_FOUND, "a's id on b");
    CHECK(certstore_unsubscribe(a, id_b) == CERTSTORE_ERR_NOT_FOUND, "b's id on a");
    CHECK(certstore_unsubscribe(a, id_a) == CERTSTORE_OK, "a's id on a");
    CHECK(certstore_unsubscribe(a, id_a) == CERTSTORE_ERR_NOT_FOUND, "twice");
    CHECK(certstore_unsubscribe(b, id_b) == CERTSTORE_OK, "b's id on b");
    certstore_free(a);
    certstore_free(b);
}

static void hex(const uint8_t *bytes, size_t n, char *out) {
    for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", bytes[i]);
}

static void test_pem_from_validated_der(void) {
    static const struct {
        const char *cert, *key, *ca, *key_canonical;
    } cases[] = {
        /* A comment naming a BEGIN line before another leaf's body: a's key matches only a. */
        {"a-comment.crt", "a.key", NULL, "a.key.canonical.pem"},
        /* CRLF line ends and a trailing comment, in the chain and in the CA bundle. */
        {"a-crlf.crt", "a-sec1.key", "ca-crlf.crt", "a-sec1.key.canonical.pem"},
    };
    /* RSA with a PKCS#1 key: handed out as RSA PRIVATE KEY. */
    {
        certstore_store *store = NULL;
        certstore_snapshot *snap = NULL;
        CHECK(load_files("r.crt", "r-pkcs1.key", NULL, &store, NULL) == CERTSTORE_OK, "RSA load");
        certstore_get_current(store, &snap);
        CHECK(serial_is(snap, "1007"), "RSA serial %s", certstore_snapshot_serial(snap));
        CHECK(pem_is(certstore_snapshot_key_pem, snap, "r-pkcs1.key.canonical.pem"), "RSA PRIVATE KEY re-encoded");
        certstore_snapshot_free(snap);
        certstore_free(store);
    }
    size_t fp_len;
    char *want_fp = read_fixture("a.sha256", &fp_len);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        certstore_store *store = NULL;
        certstore_error *err = NULL;
        if (load_files(cases[i].cert, cases[i].key, cases[i].ca, &store, &err) != CERTSTORE_OK) {
            CHECK(0, "%s: %s", cases[i].cert, certstore_error_message(err));
            certstore_error_free(err);
            continue;
        }
        certstore_snapshot *snap = NULL;
        certstore_get_current(store, &snap);
        CHECK(pem_is(certstore_snapshot_cert_pem, snap, "a.canonical.pem"),
              "%s: cert PEM is the PEM of the validated DER", cases[i].cert);
        CHECK(serial_is(snap, "1001"), "%s: serial %s", cases[i].cert, certstore_snapshot_serial(snap));
        char fp[2 * CERTSTORE_SHA256_LEN + 1];
        hex(certstore_snapshot_fingerprint_sha256(snap), CERTSTORE_SHA256_LEN, fp);
        CHECK(strncmp(fp, want_fp, 2 * CERTSTORE_SHA256_LEN) == 0, "%s: fingerprint %s", cases[i].cert, fp);
        CHECK(certstore_snapshot_not_after(snap) == fixture_int("a.notafter"), "%s: notAfter", cases[i].cert);
        /* Compared, never printed: key bytes stay out of the log. */
        CHECK(pem_is(certstore_snapshot_key_pem, snap, cases[i].key_canonical),
              "%s: key PEM re-encoded under its label", cases[i].key);
        if (cases[i].ca) {
            CHECK(pem_is(certstore_snapshot_ca_pem, snap, "ca.canonical.pem"), "CA PEM");
            CHECK(certstore_snapshot_ca_count(snap) == 1, "ca_count %zu", certstore_snapshot_ca_count(snap));
            CHECK(certstore_snapshot_ca_not_after(snap, 0) == fixture_int("ca.notafter"), "CA notAfter");
            CHECK(certstore_snapshot_ca_not_after(snap, 1) == 0, "CA index out of range");
        } else {
            CHECK(certstore_snapshot_ca_count(snap) == 0 && certstore_snapshot_ca_not_after(snap, 0) == 0,
                  "no CA");
        }
        certstore_snapshot_free(snap);
        certstore_free(store);
    }
    CHECK(certstore_snapshot_ca_count(NULL) == 0 && certstore_snapshot_ca_not_after(NULL, 0) == 0, "CA NULL");
    free(want_fp);
}

static void test_relative_paths(void) {
    char cwd[PATH_MAX], dir[64], other[64];
    if (!getcwd(cwd, sizeof cwd)) { perror("getcwd"); exit(2); }
    make_temp_dir(dir, sizeof dir);
    make_temp_dir(other, sizeof other);
    kubelet_write(dir, "a.crt", "a.key");
    kubelet_write(other, "c.crt", "c.key"); /* what a store following the cwd would pick up */
    if (chdir(dir) != 0) { perror(dir); exit(2); }
    certstore_options opts;
    certstore_options_init(&opts, sizeof opts);
    opts.cert_path = "tls.crt";
    opts.key_path = "./tls.key";
    opts.watch = 2;              /* any nonzero int means on */
    opts.reread_interval_ms = 0; /* so only inotify can see the rotation */
    certstore_store *store = NULL;
    certstore_error *err = NULL;
    CHECK(certstore_load(&opts, &store, &err) == CERTSTORE_OK, "relative load: %s", certstore_error_message(err));
    certstore_error_free(err);
    if (!store) return;
    struct recorder rec = {.lock = PTHREAD_MUTEX_INITIALIZER};
    uint64_t id;
    certstore_subscribe(store, record, (uintptr_t)&rec, &id);
    if (chdir(other) != 0) { perror(other); exit(2); }

    kubelet_write(dir, "b.crt", "b.key");
    CHECK(wait_events(&rec, 0, 1), "rotation seen after chdir (watch = 2)");
    certstore_snapshot *snap = NULL;
    certstore_get_current(store, &snap);
    CHECK(serial_is(snap, "1002"), "the original files: %s", certstore_snapshot_serial(snap));
    certstore_snapshot_free(snap);
    CHECK(certstore_reload(store, &err) == CERTSTORE_OK, "reload after chdir: %s", certstore_error_message(err));
    certstore_error_free(err);
    if (chdir("/") != 0) { perror("/"); exit(2); }
    CHECK(certstore_reload(store, &err) == CERTSTORE_OK, "reload from /: %s", certstore_error_message(err));
    certstore_error_free(err);
    certstore_get_current(store, &snap);
    CHECK(serial_is(snap, "1002") && certstore_generation(store) == 2, "still the original files: %s",
          certstore_snapshot_serial(snap));
    certstore_snapshot_free(snap);
    if (chdir(cwd) != 0) { perror(cwd); exit(2); }
    certstore_unsubscribe(store, id);
    certstore_free(store);
    remove_tree(dir);
    remove_tree(other);
}

struct hammer {
    certstore_store *store;
    const uint64_t *counter;
    int stop;
    unsigned long iterations, backwards, lagging, counter_leading, counter_backwards, generations_seen;
};

static void *hammer_run(void *arg) {
    struct hammer *h = arg;
    uint64_t prev = 0, prev_counter = 0;
    while (!__atomic_load_n(&h->stop, __ATOMIC_ACQUIRE)) {
        /* The counter is stored just after a snapshot is published: it may trail
         * certstore_generation(), never lead it. */
        uint64_t counter = __atomic_load_n(h->counter, __ATOMIC_ACQUIRE);
        certstore_snapshot *snap = NULL;
        certstore_get_current(h->store, &snap);
        uint64_t gen = certstore_snapshot_generation(snap);
        uint64_t after = certstore_generation(h->store);
        certstore_snapshot_free(snap);
        h->backwards += gen < prev;
        h->lagging += after < gen;
        h->counter_leading += counter > gen;
        h->counter_backwards += counter < prev_counter;
        prev_counter = counter;
        h->generations_seen += gen != prev;
        prev = gen;
        h->iterations++;
        /* Under valgrind threads run one at a time: without a yield two hammering threads
         * starve the library's threads and the rotations they wait for. */
        sched_yield();
    }
    return NULL;
}

static void test_generation_monotonic(void) {
    enum { THREADS = 2, ROTATIONS = 20 };
    char dir[64], cert[4096], key[4096];
    make_temp_dir(dir, sizeof dir);
    kubelet_write(dir, "a.crt", "a.key");
    snprintf(cert, sizeof cert, "%s/tls.crt", dir);
    snprintf(key, sizeof key, "%s/tls.key", dir);
    certstore_options opts;
    certstore_options_init(&opts, sizeof opts);
    opts.cert_path = cert;
    opts.key_path = key;
    opts.reread_interval_ms = 0;
    certstore_store *store = NULL;
    if (certstore_load(&opts, &store, NULL) != CERTSTORE_OK) { CHECK(0, "load"); return; }
    struct recorder rec = {.lock = PTHREAD_MUTEX_INITIALIZER};
    uint64_t id;
    certstore_subscribe(store, record, (uintptr_t)&rec, &id);
    const uint64_t *counter = certstore_generation_counter_acquire(store);
    struct hammer h[THREADS];
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++) {
        h[i] = (struct hammer){.store = store, .counter = counter};
        pthread_create(&threads[i], NULL, hammer_run, &h[i]);
    }
    static const char *names[3][2] = {{"b.crt", "b.key"}, {"c.crt", "c.key"}, {"a.crt", "a.key"}};
    for (int i = 0; i < ROTATIONS; i++) {
        kubelet_write(dir, names[i % 3][0], names[i % 3][1]);
        CHECK(wait_events(&rec, 0, i + 1), "rotation %d", i + 1);
    }
    for (int i = 0; i < THREADS; i++) {
        __atomic_store_n(&h[i].stop, 1, __ATOMIC_RELEASE);
        pthread_join(threads[i], NULL);
        CHECK(h[i].backwards == 0, "thread %d: %lu snapshots older than the one before", i, h[i].backwards);
        CHECK(h[i].lagging == 0, "thread %d: certstore_generation() behind a returned snapshot %lu times", i,
              h[i].lagging);
        CHECK(h[i].counter_leading == 0 && h[i].counter_backwards == 0,
              "thread %d: counter ahead of the snapshot after it %lu times, backwards %lu times", i,
              h[i].counter_leading, h[i].counter_backwards);
        /* The checks above mean something only if the thread ran across rotations. */
        CHECK(h[i].generations_seen >= 2, "thread %d saw %lu generations in %lu calls", i,
              h[i].generations_seen, h[i].iterations);
    }
    CHECK(certstore_generation(store) == ROTATIONS + 1, "generation %llu",
          (unsigned long long)certstore_generation(store));
    certstore_generation_counter_release(counter);
    certstore_unsubscribe(store, id);
    certstore_free(store);
    remove_tree(dir);
}

/* The header says what ABI and release it is, and the struct fields are fixed-width. */
static void test_abi_version(void) {
    CHECK(certstore_version_number() == CERTSTORE_VERSION_NUMBER, "library %u, header %d",
          certstore_version_number(), CERTSTORE_VERSION_NUMBER);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", CERTSTORE_VERSION_MAJOR, CERTSTORE_VERSION_MINOR,
             CERTSTORE_VERSION_PATCH);
    CHECK(strcmp(certstore_version(), want) == 0, "version %s, macros %s", certstore_version(), want);
    CHECK(CERTSTORE_ABI_VERSION == 1, "ABI version %d", CERTSTORE_ABI_VERSION);
    certstore_event ev;
    CHECK(sizeof ev.kind == 4 && offsetof(certstore_event, generation) == 8, "event kind int32_t");
    CHECK(offsetof(certstore_status_info, disk_differs) == CERTSTORE_STATUS_INFO_V1_SIZE &&
          offsetof(certstore_status_info, watch_repairs) == CERTSTORE_STATUS_INFO_V2_SIZE &&
          sizeof(certstore_status_info) == CERTSTORE_STATUS_INFO_V3_SIZE,
          "status versions start where the previous one ended");
    certstore_store *store = NULL;
    CHECK(load_files("a.crt", "a.key", NULL, &store, NULL) == CERTSTORE_OK, "load");
    if (!store) return;
    /* A v2 caller's struct: the v3 counters are not filled, and struct_size says so. */
    _Alignas(8) unsigned char buf[CERTSTORE_STATUS_INFO_V3_SIZE];
    memset(buf, 0xAA, sizeof buf);
    memcpy(buf, &(uint32_t){CERTSTORE_STATUS_INFO_V2_SIZE}, 4);
    CHECK(certstore_status(store, (certstore_status_info *)buf, NULL) == CERTSTORE_OK, "v2 status");
    CHECK(((certstore_status_info *)buf)->struct_size == CERTSTORE_STATUS_INFO_V2_SIZE, "v2 filled");
    CHECK(all_bytes(buf + CERTSTORE_STATUS_INFO_V2_SIZE, sizeof buf - CERTSTORE_STATUS_INFO_V2_SIZE, 0xAA),
          "nothing past a v2 status");
    certstore_status_info info = {.struct_size = sizeof info};
    CHECK(certstore_status(store, &info, NULL) == CERTSTORE_OK &&
          info.struct_size >= CERTSTORE_STATUS_INFO_V3_SIZE && info.watch_repairs == 0 &&
          info.events_dropped == 0, "v3 counters filled");
    memcpy(buf, &(uint32_t){4097}, 4);
    CHECK(certstore_status(store, (certstore_status_info *)buf, NULL) == CERTSTORE_ERR_INVALID_ARGUMENT,
          "status struct_size above 4096");
    certstore_free(store);
}

/* certstore_free(Y) from X's callback delivers Y's queued events (the header's promise). */
struct free_other {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int entered, go;
    certstore_store *other;
    certstore_code freed;
};

static void free_other_store(const certstore_event *event, uintptr_t user_data) {
    struct free_other *f = (struct free_other *)user_data;
    if (event->kind != CERTSTORE_EVENT_ROTATED) return;
    pthread_mutex_lock(&f->lock);
    f->entered = 1;
    pthread_cond_broadcast(&f->cond);
    while (!f->go) pthread_cond_wait(&f->cond, &f->lock);
    certstore_store *other = f->other;
    f->other = NULL;
    pthread_mutex_unlock(&f->lock);
    if (other) f->freed = certstore_free(other);
}

static void test_free_from_another_stores_callback(void) {
    char dir_x[64], dir_y[64], cert[4096], key[4096];
    certstore_store *x = NULL, *y = NULL;
    char *dirs[2] = {dir_x, dir_y};
    certstore_store **stores[2] = {&x, &y};
    for (int i = 0; i < 2; i++) {
        make_temp_dir(dirs[i], sizeof dir_x);
        kubelet_write(dirs[i], "a.crt", "a.key");
        snprintf(cert, sizeof cert, "%s/tls.crt", dirs[i]);
        snprintf(key, sizeof key, "%s/tls.key", dirs[i]);
        certstore_options opts;
        certstore_options_init(&opts, sizeof opts);
        opts.cert_path = cert;
        opts.key_path = key;
        opts.watch = 0;
        opts.reread_interval_ms = 0;
        CHECK(certstore_load(&opts, stores[i], NULL) == CERTSTORE_OK, "load %d", i);
    }
    if (!x || !y) return;
    struct free_other f = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, y, CERTSTORE_ERR_PANIC};
    struct recorder rec_y = {.lock = PTHREAD_MUTEX_INITIALIZER};
    uint64_t id_x, id_y;
    certstore_subscribe(x, free_other_store, (uintptr_t)&f, &id_x);
    certstore_subscribe(y, record, (uintptr_t)&rec_y, &id_y);
    kubelet_write(dir_x, "b.crt", "b.key");
    CHECK(certstore_reload(x, NULL) == CERTSTORE_OK, "rotate x");
    pthread_mutex_lock(&f.lock);
    while (!f.entered) pthread_cond_wait(&f.cond, &f.lock);
    pthread_mutex_unlock(&f.lock);
    /* X's callback is running: Y's rotation waits in Y's queue. */
    kubelet_write(dir_y, "b.crt", "b.key");
    CHECK(certstore_reload(y, NULL) == CERTSTORE_OK, "rotate y");
    pthread_mutex_lock(&f.lock);
    f.go = 1;
    pthread_cond_broadcast(&f.cond);
    pthread_mutex_unlock(&f.lock);
    certstore_unsubscribe(x, id_x); /* waits for the callback that frees Y */
    CHECK(f.freed == CERTSTORE_OK, "certstore_free(y) from x's callback: %s", certstore_code_name(f.freed));
    CHECK(recorder_count(&rec_y, 0) == 1 && strcmp(rec_y.last_serial, "1002") == 0,
          "y's queued rotation delivered before certstore_free(y) returned (got %d, serial '%s')",
          recorder_count(&rec_y, 0), rec_y.last_serial);
    certstore_free(x);
    remove_tree(dir_x);
    remove_tree(dir_y);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s FIXTURE_DIR\n", argv[0]);
        return 2;
    }
    fixtures = argv[1];
    test_unsubscribe_foreign_ids(); /* first: before any subscription exists */
    test_null_and_invalid_arguments();
    test_options_init_sizes();
    test_load_failure_reasons();
    test_rotation_lifecycle();
    test_ca_bundle();
    test_pem_from_validated_der();
    test_disk_status();
    test_snapshot_ref();
    test_relative_paths();
    test_generation_monotonic();
    test_abi_version();
    test_free_from_another_stores_callback();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
