/*
 * FROZEN: version 1 of certstore.h, as a program built for v1 compiled it. NEVER EDIT THIS
 * FILE, not even to fix a comment: it is the old header that tests/c/compat_v1.c is compiled
 * against, to prove that a v1 program keeps working with every later library (ABI growth is
 * by appending fields behind struct_size). It is include/certstore.h of the v1 release with
 * certstore_status_info ending at not_after_unix (CERTSTORE_STATUS_INFO_V1_SIZE bytes).
 */
/*
 * certstore.h - C API of certstore: a TLS certificate store that follows rotations on disk.
 *
 * The three verbs: certstore_load() validates the files and starts watching them;
 * certstore_subscribe() calls you on every rotation or refused reload;
 * certstore_get_current() hands out the generation served now (no copy, no I/O).
 *
 * Conventions:
 *  - Every function is safe to call from any thread, concurrently with any other, with one
 *    exception: certstore_free(store) must not overlap another call on the same store (it
 *    waits for that store's callbacks itself). NULL arguments return
 *    CERTSTORE_ERR_NULL_ARGUMENT (or a documented neutral value), never crash.
 *  - Structs the caller fills carry their size: certstore_options_init(&o, sizeof o), and
 *    certstore_status_info.struct_size = sizeof info. Fields are only ever appended; the
 *    library reads and writes no byte past the size you declared, so a program built against
 *    an older header keeps working with a newer library.
 *  - Every PEM, serial, date and fingerprint handed out is derived from the DER the library
 *    parsed and validated, never copied from the file.
 *  - Memory returned by the library is freed by the library's matching *_free function.
 *  - Errors come back through a certstore_error** out-parameter (never thread-local state),
 *    so callers whose threads migrate (Go) get the right error.
 *  - No function lets a Rust panic unwind into the caller: it becomes CERTSTORE_ERR_PANIC.
 *  - Key bytes never appear in error messages.
 */

#ifndef CERTSTORE_H
#define CERTSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/**
 * Length in bytes of a SHA-256 fingerprint.
 */
#define CERTSTORE_SHA256_LEN 32

/**
 * sizeof(certstore_options) in version 1 of this header, on 64-bit targets. Never changes:
 * the smallest struct_size certstore_load() accepts.
 */
#define CERTSTORE_OPTIONS_V1_SIZE 56

/**
 * sizeof(certstore_status_info) in version 1 of this header, on 64-bit targets: the smallest
 * struct_size certstore_status() accepts. Never changes.
 */
#define CERTSTORE_STATUS_INFO_V1_SIZE 56

/**
 * Why a generation was refused, as a stable value (the error message says the same for
 * people). New values may be added; treat unknown ones as CERTSTORE_REASON_OTHER.
 */
typedef enum certstore_reason {
  /**
   * Not refused (or no refusal to speak of).
   */
  CERTSTORE_REASON_NONE = 0,
  /**
   * The private key does not belong to the leaf certificate.
   */
  CERTSTORE_REASON_KEY_MISMATCH = 1,
  /**
   * The leaf's notAfter has passed.
   */
  CERTSTORE_REASON_EXPIRED = 2,
  /**
   * The leaf's notBefore has not come yet.
   */
  CERTSTORE_REASON_NOT_YET_VALID = 3,
  /**
   * The private key is encrypted (not supported).
   */
  CERTSTORE_REASON_ENCRYPTED_KEY = 4,
  /**
   * The private key is of a kind the library cannot load.
   */
  CERTSTORE_REASON_UNSUPPORTED_KEY = 5,
  /**
   * Empty file, broken PEM, no item of the expected kind, or invalid X.509.
   */
  CERTSTORE_REASON_PARSE_ERROR = 6,
  /**
   * A file exceeds max_file_size.
   */
  CERTSTORE_REASON_TOO_LARGE = 7,
  /**
   * A path names a FIFO, directory, device or socket.
   */
  CERTSTORE_REASON_NOT_REGULAR_FILE = 8,
  /**
   * A file does not exist.
   */
  CERTSTORE_REASON_MISSING = 9,
  /**
   * A file could not be read (permissions, EIO, out of descriptors).
   */
  CERTSTORE_REASON_IO_ERROR = 10,
  /**
   * Anything else (options, watcher, a caught bug).
   */
  CERTSTORE_REASON_OTHER = 11,
} certstore_reason;

/**
 * Status code returned by every fallible function.
 */
typedef enum certstore_code {
  /**
   * Success.
   */
  CERTSTORE_OK = 0,
  /**
   * A required pointer argument was NULL.
   */
  CERTSTORE_ERR_NULL_ARGUMENT = 1,
  /**
   * An argument is unusable: bad struct_size, empty path, zero size limit, bad enum value.
   */
  CERTSTORE_ERR_INVALID_ARGUMENT = 2,
  /**
   * The files could not be read or did not validate; the error names the file and why.
   */
  CERTSTORE_ERR_LOAD = 3,
  /**
   * The file watcher could not be set up (e.g. the inotify watch limit is reached).
   */
  CERTSTORE_ERR_WATCH = 4,
  /**
   * certstore_free() was called from inside a subscription callback; nothing was freed.
   */
  CERTSTORE_ERR_IN_CALLBACK = 5,
  /**
   * certstore_unsubscribe(): no such subscription on this store.
   */
  CERTSTORE_ERR_NOT_FOUND = 6,
  /**
   * A bug inside certstore was caught at the boundary; the store keeps its state.
   */
  CERTSTORE_ERR_PANIC = 7,
  /**
   * The system refused a resource (a thread, a file descriptor); nothing was created.
   */
  CERTSTORE_ERR_RESOURCE = 8,
} certstore_code;

/**
 * What happened.
 */
typedef enum certstore_event_kind {
  /**
   * A new generation validated and is served now.
   */
  CERTSTORE_EVENT_ROTATED = 1,
  /**
   * A reload was refused; the previous generation is still served.
   */
  CERTSTORE_EVENT_RELOAD_FAILED = 2,
  /**
   * inotify cannot watch (all of) the files (e.g. fs.inotify.max_user_watches is
   * exhausted); the store re-reads them on a timer until the watch is back. `error` says why.
   */
  CERTSTORE_EVENT_WATCH_DEGRADED = 3,
  /**
   * Every watch is in place again after CERTSTORE_EVENT_WATCH_DEGRADED.
   */
  CERTSTORE_EVENT_WATCH_RESTORED = 4,
} certstore_event_kind;

/**
 * What to do with a leaf certificate outside its validity window.
 */
typedef enum certstore_validity_policy {
  /**
   * Refuse an expired or not-yet-valid leaf (default).
   */
  CERTSTORE_VALIDITY_ENFORCE = 0,
  /**
   * Accept the leaf whatever its validity window.
   */
  CERTSTORE_VALIDITY_IGNORE = 1,
} certstore_validity_policy;

/**
 * An error: a one-line reason naming the file and what is wrong with it. Opaque; read it with
 * certstore_error_message(), free it with certstore_error_free().
 */
typedef struct certstore_error certstore_error;

/**
 * One immutable generation: chain, key, CA bundle and leaf facts. Opaque and reference
 * counted: it is the store's own snapshot, handed out without a copy. Pointers returned by
 * the accessors stay valid until certstore_snapshot_free(), even after the store rotated or
 * was freed.
 */
typedef struct certstore_snapshot certstore_snapshot;

/**
 * A loaded certificate store. Opaque. Created by certstore_load(), destroyed by
 * certstore_free().
 */
typedef struct certstore_store certstore_store;

/**
 * Options for certstore_load(). Prepare it with
 * `certstore_options_init(&options, sizeof options)`, which sets struct_size and the
 * defaults; then set the paths and change what you need. Later versions only append fields,
 * so a program built against an older header keeps working with a newer library.
 */
typedef struct certstore_options {
  /**
   * sizeof(certstore_options) as the caller compiled it; set by certstore_options_init().
   */
  uint32_t struct_size;
  /**
   * Reserved; must be zero (certstore_options_init() zeroes it).
   */
  uint32_t _reserved0;
  /**
   * Path of the PEM certificate chain, leaf first. Required. Copied by certstore_load() and
   * made absolute against the working directory at that moment.
   */
  const char *cert_path;
  /**
   * Path of the PEM private key (PKCS#8, PKCS#1 or SEC1; not encrypted). Required.
   */
  const char *key_path;
  /**
   * Path of a PEM CA bundle (client CAs / roots), or NULL for none.
   */
  const char *ca_path;
  /**
   * Nonzero: watch the files' directories with inotify. Default 1.
   */
  int32_t watch;
  /**
   * Re-read the files this often (content hash compare); 0 disables. Default 60000.
   */
  uint32_t reread_interval_ms;
  /**
   * Largest accepted file in bytes; 0 is invalid. Default 1048576 (1 MiB).
   */
  uint64_t max_file_size;
  /**
   * A certstore_validity_policy value. Default CERTSTORE_VALIDITY_ENFORCE.
   */
  uint32_t validity;
  /**
   * Reserved for a later version; must be zero (certstore_options_init() zeroes it).
   * Fields of later versions start at offset CERTSTORE_OPTIONS_V1_SIZE.
   */
  uint32_t _reserved1;
} certstore_options;

/**
 * Counters, outcome of reloads, and what the disk holds compared with what is served. Set
 * struct_size to sizeof(certstore_status_info) before calling certstore_status(); the library
 * writes no byte past struct_size and sets struct_size to the number of bytes it filled.
 */
typedef struct certstore_status_info {
  /**
   * sizeof(certstore_status_info) as the caller compiled it.
   */
  uint32_t struct_size;
  /**
   * Reserved; set to zero by certstore_status().
   */
  uint32_t _reserved0;
  /**
   * Generation served now (1 after certstore_load()).
   */
  uint64_t generation;
  /**
   * Generations published, the initial load included.
   */
  uint64_t reloads_ok;
  /**
   * Refusals reported (the same refused files are counted once).
   */
  uint64_t reloads_failed;
  /**
   * When the last generation was published, unix milliseconds; 0 = never.
   */
  int64_t last_success_unix_ms;
  /**
   * When the last refusal was reported, unix milliseconds; 0 = never.
   */
  int64_t last_failure_unix_ms;
  /**
   * notAfter of the served leaf, unix seconds.
   */
  int64_t not_after_unix;
} certstore_status_info;

/**
 * An event passed to a certstore_callback. Borrowed: valid only during the callback.
 */
typedef struct certstore_event {
  /**
   * What happened (a certstore_event_kind; treat unknown kinds as informational).
   */
  enum certstore_event_kind kind;
  /**
   * ROTATED: the new generation. RELOAD_FAILED: the generation still served.
   */
  uint64_t generation;
  /**
   * RELOAD_FAILED and WATCH_DEGRADED: why (certstore_error_message(),
   * certstore_error_reason(); do not free it). Otherwise NULL.
   */
  const struct certstore_error *error;
  /**
   * ROTATED: the new generation, for the certstore_snapshot_* accessors (serial, notAfter,
   * PEM). Borrowed: valid during the callback only, do not free it; to keep it, take a
   * reference with certstore_snapshot_ref() (released by certstore_snapshot_free()).
   * Otherwise NULL.
   */
  const struct certstore_snapshot *snapshot;
} certstore_event;

/**
 * A subscription callback. Runs on the library's notifier thread, with no library lock held,
 * one event at a time, in publication order. It may call any certstore function except
 * certstore_free() on its own store (which returns CERTSTORE_ERR_IN_CALLBACK). Keep it short:
 * it delays later events for every subscriber.
 */
typedef void (*certstore_callback)(const struct certstore_event *event, uintptr_t user_data);

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * The stable snake_case name of a reason, e.g. "key_mismatch" (the Rust core's, used as a
 * metric label); "unknown" for a value that is not a certstore_reason. Static storage.
 */
const char *certstore_reason_name(int32_t reason);

/**
 * The version of the library, e.g. "0.1.0". Static storage; never free it.
 */
const char *certstore_version(void);

/**
 * The name of a status code, e.g. "CERTSTORE_ERR_LOAD"; "CERTSTORE_UNKNOWN_CODE" for a
 * value that is not a certstore_code. Static storage; never free it.
 */
const char *certstore_code_name(int32_t code);

/**
 * The message of `error`, a NUL-terminated UTF-8 string owned by `error`: valid until
 * certstore_error_free(error). Returns "" for NULL.
 *
 * # Safety
 * `error` is NULL or a pointer received from this library and not yet freed.
 */
const char *certstore_error_message(const struct certstore_error *error);

/**
 * Why the generation behind `error` was refused (CERTSTORE_REASON_OTHER for errors that are
 * not about the files, such as invalid options); CERTSTORE_REASON_NONE for NULL.
 *
 * # Safety
 * `error` is NULL or a pointer received from this library and not yet freed.
 */
enum certstore_reason certstore_error_reason(const struct certstore_error *error);

/**
 * Frees an error returned through an out-parameter. NULL is a no-op. Do not free the
 * borrowed error of a certstore_event.
 *
 * # Safety
 * `error` is NULL or a pointer received from this library's out-parameters, freed once.
 */
void certstore_error_free(struct certstore_error *error);

/**
 * Fills the first `size` bytes of `*options` with the defaults and sets struct_size to
 * `size`. Pass `sizeof *options` as your program compiled it. Bytes of fields this library
 * does not know (a newer header) are set to zero. Returns CERTSTORE_ERR_NULL_ARGUMENT for
 * NULL and CERTSTORE_ERR_INVALID_ARGUMENT (writing nothing) when `size` is below
 * CERTSTORE_OPTIONS_V1_SIZE or above 4096.
 *
 * # Safety
 * `options` is NULL or points to `size` writable bytes.
 */
enum certstore_code certstore_options_init(struct certstore_options *options, size_t size);

/**
 * Sets `*out_snapshot` to the generation served now; free it with certstore_snapshot_free().
 * No I/O, no lock, no allocation: a reference-count increment. Never returns an older
 * generation than one this thread got before, and certstore_generation() called afterwards
 * returns at least this snapshot's generation.
 *
 * # Safety
 * `store` is NULL or a live store; `out_snapshot` is NULL or writable.
 */
enum certstore_code certstore_get_current(const struct certstore_store *store,
                                          struct certstore_snapshot **out_snapshot);

/**
 * Takes one more reference to `snapshot` (e.g. the borrowed snapshot of a ROTATED event, to
 * keep it after the callback) and returns it; release it with certstore_snapshot_free().
 * NULL for NULL.
 *
 * # Safety
 * `snapshot` is NULL or live (from certstore_get_current(), certstore_snapshot_ref(), or an
 * event during its callback).
 */
struct certstore_snapshot *certstore_snapshot_ref(const struct certstore_snapshot *snapshot);

/**
 * Releases a snapshot. NULL is a no-op. The key bytes are zeroized when the last reference
 * (yours or the store's) is gone.
 *
 * # Safety
 * `snapshot` is NULL or from certstore_get_current()/certstore_snapshot_ref(), released once.
 */
void certstore_snapshot_free(struct certstore_snapshot *snapshot);

/**
 * The certificate chain that was validated, leaf first, as PEM: each certificate's DER
 * encoded as a CERTIFICATE block (64-column base64, "\n" line ends), never the file's bytes
 * (comments, other blocks and CRLFs of the file are not carried over). Its length in
 * `*out_len`; not NUL-terminated; owned by the snapshot. NULL (and length 0) for NULL.
 *
 * # Safety
 * `snapshot` is NULL or live; `out_len` is NULL or writable.
 */
const uint8_t *certstore_snapshot_cert_pem(const struct certstore_snapshot *snapshot,
                                           size_t *out_len);

/**
 * The private key that was loaded and matched against the leaf, PEM-encoded from its DER
 * under the label of its encoding ("PRIVATE KEY", "RSA PRIVATE KEY" or "EC PRIVATE KEY");
 * its length in `*out_len`. Not NUL-terminated. Owned by the snapshot and zeroized when the
 * last reference is dropped: copy it only into memory you wipe, never log it.
 *
 * # Safety
 * `snapshot` is NULL or live; `out_len` is NULL or writable.
 */
const uint8_t *certstore_snapshot_key_pem(const struct certstore_snapshot *snapshot,
                                          size_t *out_len);

/**
 * The CA bundle's certificates that were validated, PEM-encoded from their DER as
 * certstore_snapshot_cert_pem() does; its length in `*out_len`. NULL and length 0 when no
 * CA path was configured.
 *
 * # Safety
 * `snapshot` is NULL or live; `out_len` is NULL or writable.
 */
const uint8_t *certstore_snapshot_ca_pem(const struct certstore_snapshot *snapshot,
                                         size_t *out_len);

/**
 * The generation of this snapshot; 0 for NULL.
 *
 * # Safety
 * `snapshot` is NULL or live.
 */
uint64_t certstore_snapshot_generation(const struct certstore_snapshot *snapshot);

/**
 * The leaf's notBefore in unix seconds; 0 for NULL.
 *
 * # Safety
 * `snapshot` is NULL or live.
 */
int64_t certstore_snapshot_not_before(const struct certstore_snapshot *snapshot);

/**
 * The leaf's notAfter in unix seconds; 0 for NULL.
 *
 * # Safety
 * `snapshot` is NULL or live.
 */
int64_t certstore_snapshot_not_after(const struct certstore_snapshot *snapshot);

/**
 * The leaf's serial number, lowercase hex without leading zeros, NUL-terminated, owned by the
 * snapshot; "" for NULL.
 *
 * # Safety
 * `snapshot` is NULL or live.
 */
const char *certstore_snapshot_serial(const struct certstore_snapshot *snapshot);

/**
 * The SHA-256 of the leaf certificate's DER: CERTSTORE_SHA256_LEN bytes owned by the
 * snapshot; NULL for NULL.
 *
 * # Safety
 * `snapshot` is NULL or live.
 */
const uint8_t *certstore_snapshot_fingerprint_sha256(const struct certstore_snapshot *snapshot);

/**
 * The number of certificates in the CA bundle; 0 without one or for NULL.
 *
 * # Safety
 * `snapshot` is NULL or live.
 */
size_t certstore_snapshot_ca_count(const struct certstore_snapshot *snapshot);

/**
 * The notAfter (unix seconds) of CA certificate `index` (bundle order); 0 for NULL or an
 * index out of range.
 *
 * # Safety
 * `snapshot` is NULL or live.
 */
int64_t certstore_snapshot_ca_not_after(const struct certstore_snapshot *snapshot, size_t index);

/**
 * Reads and validates the files named in `options`, then starts watching them.
 *
 * On success returns CERTSTORE_OK, sets `*out_store` to a new store (free it with
 * certstore_free()) and `*out_error` to NULL. On failure sets `*out_store` to NULL and, when
 * `out_error` is not NULL, `*out_error` to an error naming the file and the reason (free it
 * with certstore_error_free()); returns CERTSTORE_ERR_LOAD for unreadable or invalid files,
 * CERTSTORE_ERR_INVALID_ARGUMENT for unusable options, CERTSTORE_ERR_WATCH when the watcher
 * cannot start. A refused file is retried after 5, 20, 80 and 320 ms before failing, so this
 * can take about half a second on bad input.
 *
 * # Safety
 * `options` is NULL or a certstore_options prepared with certstore_options_init(), with
 * NUL-terminated path strings; `out_store` is NULL or writable; `out_error` is NULL or writable.
 */
enum certstore_code certstore_load(const struct certstore_options *options,
                                   struct certstore_store **out_store,
                                   struct certstore_error **out_error);

/**
 * Reads the files now and publishes them if they changed and validate (e.g. on SIGHUP).
 * Synchronous: returns after the reload, CERTSTORE_OK when the files were published or
 * unchanged, CERTSTORE_ERR_LOAD with `*out_error` set when they were refused (the last good
 * generation is still served and subscribers get a RELOAD_FAILED event).
 *
 * # Safety
 * `store` is NULL or a live store from certstore_load(); `out_error` is NULL or writable.
 */
enum certstore_code certstore_reload(struct certstore_store *store,
                                     struct certstore_error **out_error);

/**
 * The generation served now: 1 after certstore_load(), +1 for each published rotation.
 * One atomic load; returns 0 for NULL.
 *
 * # Safety
 * `store` is NULL or a live store from certstore_load().
 */
uint64_t certstore_generation(const struct certstore_store *store);

/**
 * A pointer to a counter holding the store's generation, for callers that cannot afford a
 * function call per read: Go's handshake path reads it instead of making a cgo call. It is
 * stored just after a new snapshot is published, so it may trail certstore_generation() for
 * that instant, never lead it, and never goes backwards. Read it only with an atomic acquire load, e.g.
 * `__atomic_load_n(counter, __ATOMIC_ACQUIRE)`; never write it. It stays valid until
 * certstore_generation_counter_release(), even after certstore_free(). NULL for NULL.
 *
 * # Safety
 * `store` is NULL or a live store from certstore_load().
 */
const uint64_t *certstore_generation_counter_acquire(const struct certstore_store *store);

/**
 * Releases a pointer from certstore_generation_counter_acquire(). NULL is a no-op.
 *
 * # Safety
 * `counter` is NULL or from certstore_generation_counter_acquire(), released once, and not
 * read afterwards.
 */
void certstore_generation_counter_release(const uint64_t *counter);

/**
 * Copies the reload counters and the served-vs-disk state into `*out_status`: at most
 * out_status->struct_size bytes (which must be at least CERTSTORE_STATUS_INFO_V1_SIZE), then
 * sets struct_size to the number of bytes filled; fields this library does not know are
 * zeroed. When `out_last_error` is not NULL it receives why the files on disk are refused now
 * (free it with certstore_error_free(); certstore_error_reason() gives the reason), or NULL
 * when the served generation is what the disk holds.
 *
 * # Safety
 * `store` is NULL or live; `out_status` is NULL or points to `struct_size` writable bytes;
 * `out_last_error` is NULL or writable.
 */
enum certstore_code certstore_status(const struct certstore_store *store,
                                     struct certstore_status_info *out_status,
                                     struct certstore_error **out_last_error);

/**
 * Stops watching, delivers the events already queued (callbacks may still use `store`
 * meanwhile), waits for the last callback to return, and frees the store. When it was the
 * last store of the process, the library's threads are joined and its inotify descriptor
 * closed before this returns. Snapshots and generation counters obtained from the store stay
 * valid until their own release. NULL is a no-op. Called from inside a subscription callback
 * of this store it frees nothing and returns CERTSTORE_ERR_IN_CALLBACK (it would wait for
 * itself).
 *
 * The one rule of the handle's lifetime: certstore_free() must not run while another thread
 * is inside any certstore_* call on the same store, and no call may use the store after it
 * began. Callbacks are the exception the library handles itself: it waits for them.
 *
 * # Safety
 * `store` is NULL or a live store from certstore_load(), not used by other threads.
 */
enum certstore_code certstore_free(struct certstore_store *store);

/**
 * Calls `callback(event, user_data)` for every event from now on. Sets `*out_subscription`
 * to an id for certstore_unsubscribe(). `user_data` is passed through untouched (a pointer
 * cast to uintptr_t, or a Go cgo.Handle).
 *
 * # Safety
 * `store` is NULL or live; `callback` is NULL or a function safe to call from another thread
 * with `user_data` until certstore_unsubscribe() or certstore_free() returns;
 * `out_subscription` is NULL or writable.
 */
enum certstore_code certstore_subscribe(struct certstore_store *store,
                                        certstore_callback callback,
                                        uintptr_t user_data,
                                        uint64_t *out_subscription);

/**
 * Ends a subscription. When it returns, the callback is not running and will not be called
 * again — it waits for a running call to finish, so never call it while holding a lock your
 * callback takes. Called from inside the callback itself it returns at once. Returns
 * CERTSTORE_ERR_NOT_FOUND for an unknown (or already ended) id.
 *
 * # Safety
 * `store` is NULL or live.
 */
enum certstore_code certstore_unsubscribe(struct certstore_store *store, uint64_t subscription);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* CERTSTORE_H */
