/*
 * A program built against version 1 of the header (tests/c/v1/certstore.h, frozen) run
 * against whatever library the loader finds: today's, and one whose structs grew (the
 * abi-test-v2 feature). It must work unchanged, and the library must never write past the
 * sizes this program declared: the structs sit in buffers with canary bytes after them, and
 * in heap blocks of exactly their size (ASan and valgrind see a byte too far).
 * Usage: compat_v1 FIXTURE_DIR current|grown
 *   grown: the library must be the abi-test-v2 build (its status ends in 8 bytes of 0xFF),
 *   so the run cannot pass against the wrong library.
 */
#include "certstore.h"
#include "testutil.h"

#include <stddef.h>

_Static_assert(sizeof(certstore_options) == CERTSTORE_OPTIONS_V1_SIZE, "v1 options size");
_Static_assert(sizeof(certstore_status_info) == CERTSTORE_STATUS_INFO_V1_SIZE, "v1 status size");

enum { CANARY = 0x5A, SLACK = 256 };

static int canary_intact(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != CANARY) return 0;
    return 1;
}

/* The library's own status size, and whether its last 8 bytes are the abi-test-v2 marker. */
static size_t library_status_size(certstore_store *store, int *grown_marker) {
    _Alignas(8) unsigned char big[4096];
    memset(big, CANARY, sizeof big);
    memcpy(big, &(uint32_t){sizeof big}, 4);
    if (certstore_status(store, (certstore_status_info *)big, NULL) != CERTSTORE_OK) return 0;
    uint32_t filled;
    memcpy(&filled, big, 4);
    *grown_marker = filled >= 8;
    for (size_t i = filled >= 8 ? filled - 8 : 0; i < filled; i++) *grown_marker &= big[i] == 0xFF;
    return filled;
}

static void test_options(const char *cert, const char *key, int grown) {
    /* The struct in a buffer with canaries after it: the library must write sizeof bytes. */
    _Alignas(8) unsigned char buf[sizeof(certstore_options) + SLACK];
    memset(buf, CANARY, sizeof buf);
    certstore_options *o = (certstore_options *)buf;
    CHECK(certstore_options_init(o, sizeof *o) == CERTSTORE_OK, "init");
    CHECK(o->struct_size == CERTSTORE_OPTIONS_V1_SIZE, "struct_size %u", o->struct_size);
    CHECK(canary_intact(buf + sizeof *o, SLACK), "options_init wrote past sizeof (v1)");
    CHECK(o->watch == 1 && o->reread_interval_ms == 60000 && o->max_file_size == 1048576 &&
          o->validity == CERTSTORE_VALIDITY_ENFORCE && !o->cert_path && !o->key_path && !o->ca_path,
          "defaults");
    CHECK(certstore_options_init(o, sizeof *o - 1) == CERTSTORE_ERR_INVALID_ARGUMENT, "below v1");

    /* What a newer program passes: a bigger struct_size, accepted while the tail beyond what
     * the library knows is zero. The first 8 tail bytes are the grown library's own field
     * (zero by default), the last 8 are unknown to every library. */
    struct {
        certstore_options v1;
        uint64_t next_field, unknown_field;
    } newer;
    CHECK(certstore_options_init(&newer.v1, sizeof newer) == CERTSTORE_OK, "init newer");
    CHECK(newer.v1.struct_size == sizeof newer && newer.next_field == 0 && newer.unknown_field == 0,
          "bigger struct: size kept, tail zeroed");
    newer.v1.cert_path = cert;
    newer.v1.key_path = key;
    newer.v1.watch = 0;
    certstore_store *store = NULL;
    certstore_error *err = NULL;
    CHECK(certstore_load(&newer.v1, &store, &err) == CERTSTORE_OK, "zero tail: %s", certstore_error_message(err));
    certstore_error_free(err);
    certstore_free(store);
    newer.unknown_field = 1;
    CHECK(certstore_load(&newer.v1, &store, &err) == CERTSTORE_ERR_INVALID_ARGUMENT && store == NULL,
          "non-zero unknown tail refused");
    CHECK(strstr(certstore_error_message(err), "does not know"), "%s", certstore_error_message(err));
    certstore_error_free(err);
    /* The grown library knows the next field; today's does not. */
    newer.unknown_field = 0;
    newer.next_field = 1;
    certstore_code rc = certstore_load(&newer.v1, &store, &err);
    CHECK(rc == (grown ? CERTSTORE_OK : CERTSTORE_ERR_INVALID_ARGUMENT), "a field only the grown library knows: %s",
          certstore_code_name(rc));
    certstore_error_free(err);
    certstore_free(store);
}

int main(int argc, char **argv) {
    if (argc != 3 || (strcmp(argv[2], "current") != 0 && strcmp(argv[2], "grown") != 0)) {
        fprintf(stderr, "usage: %s FIXTURE_DIR current|grown\n", argv[0]);
        return 2;
    }
    fixtures = argv[1];
    const int want_grown = strcmp(argv[2], "grown") == 0;
    char dir[64], cert[4096], key[4096];
    make_temp_dir(dir, sizeof dir);
    kubelet_write(dir, "a.crt", "a.key");
    snprintf(cert, sizeof cert, "%s/tls.crt", dir);
    snprintf(key, sizeof key, "%s/tls.key", dir);
    test_options(cert, key, want_grown);

    /* Options in a heap block of exactly the v1 size: a read past it is an ASan/valgrind error. */
    certstore_options *opts = malloc(sizeof *opts);
    memset(opts, 0xAA, sizeof *opts);
    certstore_options_init(opts, sizeof *opts);
    opts->cert_path = cert;
    opts->key_path = key;
    opts->reread_interval_ms = 0; /* inotify alone */
    certstore_store *store = NULL;
    certstore_error *err = NULL;
    certstore_code rc = certstore_load(opts, &store, &err);
    free(opts);
    CHECK(rc == CERTSTORE_OK && store && !err, "load: %s", certstore_error_message(err));
    if (rc != CERTSTORE_OK) {
        certstore_error_free(err);
        printf("%d passed, %d failed\n", passed, failed + 1);
        return 1;
    }

    int grown_marker = 0;
    size_t lib_size = library_status_size(store, &grown_marker);
    CHECK(lib_size > sizeof(certstore_status_info), "the library's status (%zu bytes) is newer than v1", lib_size);
    CHECK(grown_marker == want_grown, "library is %s (status %zu bytes), expected %s",
          grown_marker ? "grown" : "current", lib_size, argv[2]);

    certstore_snapshot *snap = NULL;
    CHECK(certstore_get_current(store, &snap) == CERTSTORE_OK && snap, "get_current");
    CHECK(strcmp(certstore_snapshot_serial(snap), "1001") == 0, "serial %s", certstore_snapshot_serial(snap));
    CHECK(certstore_snapshot_generation(snap) == 1 && certstore_generation(store) == 1, "generation 1");
    size_t len = 0, want_len = 0;
    char *want = read_fixture("a.crt", &want_len);
    const uint8_t *pem = certstore_snapshot_cert_pem(snap, &len);
    CHECK(pem && len == want_len && memcmp(pem, want, len) == 0, "cert PEM");
    free(want);
    const uint8_t *key_pem = certstore_snapshot_key_pem(snap, &len);
    CHECK(key_pem && len > 0 && memcmp(key_pem, "-----BEGIN PRIVATE KEY-----\n", 28) == 0, "key PEM");
    CHECK(certstore_snapshot_ca_pem(snap, &len) == NULL && len == 0, "no CA");
    CHECK(certstore_snapshot_not_after(snap) > (int64_t)time(NULL) &&
          certstore_snapshot_not_before(snap) <= (int64_t)time(NULL), "validity window");
    const uint8_t *fp = certstore_snapshot_fingerprint_sha256(snap);
    int nonzero = 0;
    for (int i = 0; fp && i < CERTSTORE_SHA256_LEN; i++) nonzero |= fp[i];
    CHECK(nonzero, "fingerprint");

    /* A kubelet rotation, seen by a subscription. */
    struct recorder rec = {.lock = PTHREAD_MUTEX_INITIALIZER};
    uint64_t id = 0;
    CHECK(certstore_subscribe(store, record, (uintptr_t)&rec, &id) == CERTSTORE_OK, "subscribe");
    kubelet_write(dir, "b.crt", "b.key");
    CHECK(wait_events(&rec, 0, 1), "ROTATED event");
    pthread_mutex_lock(&rec.lock);
    CHECK(rec.last_generation == 2 && strcmp(rec.last_serial, "1002") == 0, "event generation %llu serial %s",
          (unsigned long long)rec.last_generation, rec.last_serial);
    pthread_mutex_unlock(&rec.lock);
    certstore_snapshot *now = NULL;
    certstore_get_current(store, &now);
    CHECK(strcmp(certstore_snapshot_serial(now), "1002") == 0 && certstore_snapshot_generation(now) == 2,
          "get_current after the rotation");
    CHECK(strcmp(certstore_snapshot_serial(snap), "1001") == 0, "the old snapshot still readable");

    /* Status with the v1 struct: filled, nothing written past it. */
    _Alignas(8) unsigned char buf[sizeof(certstore_status_info) + SLACK];
    memset(buf, CANARY, sizeof buf);
    certstore_status_info *info = (certstore_status_info *)buf;
    info->struct_size = sizeof *info;
    CHECK(certstore_status(store, info, NULL) == CERTSTORE_OK, "status");
    CHECK(canary_intact(buf + sizeof *info, SLACK), "status wrote past sizeof (v1)");
    CHECK(info->struct_size == sizeof *info, "struct_size %u", info->struct_size);
    CHECK(info->generation == 2 && info->reloads_ok == 2 && info->reloads_failed == 0, "counts %llu %llu %llu",
          (unsigned long long)info->generation, (unsigned long long)info->reloads_ok,
          (unsigned long long)info->reloads_failed);
    CHECK(info->last_success_unix_ms > 0 && info->last_failure_unix_ms == 0, "times");
    CHECK(info->not_after_unix == certstore_snapshot_not_after(now), "not_after_unix");
    /* The same in a heap block of exactly the v1 size. */
    certstore_status_info *exact = malloc(sizeof *exact);
    exact->struct_size = sizeof *exact;
    CHECK(certstore_status(store, exact, NULL) == CERTSTORE_OK && exact->generation == 2, "status (heap)");
    free(exact);
    info->struct_size = sizeof *info - 1;
    CHECK(certstore_status(store, info, NULL) == CERTSTORE_ERR_INVALID_ARGUMENT, "status below v1");

    CHECK(certstore_unsubscribe(store, id) == CERTSTORE_OK, "unsubscribe");
    CHECK(certstore_free(store) == CERTSTORE_OK, "free");
    CHECK(strcmp(certstore_snapshot_serial(now), "1002") == 0, "snapshot after free");
    certstore_snapshot_free(snap);
    certstore_snapshot_free(now);
    remove_tree(dir);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
