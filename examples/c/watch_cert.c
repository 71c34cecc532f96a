/*
 * watch_cert: load a certificate and key, print the serial and notAfter of every generation
 * the store publishes, and every refused reload. Ctrl-C to stop; SIGHUP forces a reload.
 *
 *   ./watch_cert /certs/tls.crt /certs/tls.key [/certs/ca.crt]
 */
#include "certstore.h"

#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop, reload;

static void on_signal(int sig) {
    if (sig == SIGHUP) reload = 1; else stop = 1;
}

static void print_snapshot(const certstore_snapshot *snap) {
    time_t not_after = (time_t)certstore_snapshot_not_after(snap);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&not_after));
    printf("generation %llu: serial %s, notAfter %s\n",
           (unsigned long long)certstore_snapshot_generation(snap),
           certstore_snapshot_serial(snap), when);
    fflush(stdout);
}

/* Runs on the library's notifier thread. */
static void on_event(const certstore_event *event, uintptr_t user_data) {
    (void)user_data;
    if (event->kind == CERTSTORE_EVENT_ROTATED) {
        print_snapshot(event->snapshot); /* borrowed for the duration of the callback */
    } else {
        fprintf(stderr, "reload refused, still serving generation %llu: %s\n",
                (unsigned long long)event->generation, certstore_error_message(event->error));
    }
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s CERT KEY [CA]\n", argv[0]);
        return 2;
    }
    certstore_options options;
    certstore_options_init(&options, sizeof options);
    options.cert_path = argv[1];
    options.key_path = argv[2];
    options.ca_path = argc == 4 ? argv[3] : NULL;

    certstore_store *store = NULL;
    certstore_error *error = NULL;
    if (certstore_load(&options, &store, &error) != CERTSTORE_OK) {
        fprintf(stderr, "certstore: %s\n", certstore_error_message(error));
        certstore_error_free(error);
        return 1;
    }
    certstore_snapshot *first = NULL;
    certstore_get_current(store, &first);
    print_snapshot(first);
    certstore_snapshot_free(first);

    uint64_t subscription;
    certstore_subscribe(store, on_event, 0, &subscription);

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    while (!stop) {
        pause();
        if (reload) {
            reload = 0;
            if (certstore_reload(store, &error) != CERTSTORE_OK) {
                certstore_error_free(error); /* already reported through on_event */
            }
        }
    }
    certstore_unsubscribe(store, subscription);
    certstore_free(store);
    return 0;
}
