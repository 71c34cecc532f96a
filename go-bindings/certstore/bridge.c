// Forwards the library's callback (const event pointer) to the exported Go function, whose
// generated prototype has no const. Kept in C so the cgo preamble holds declarations only.
#include "certstore.h"
#include "_cgo_export.h"

void certstoreGoTrampoline(const certstore_event *event, uintptr_t user_data) {
	certstoreGoEvent((certstore_event *)event, user_data);
}
