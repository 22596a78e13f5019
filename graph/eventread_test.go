package graph

import (
	"strings"
	"testing"

	"github.com/narrate/narrate/recovery/recoverytest"
)

// TestEventReadPanicIsContained: a panic while the event reader takes a
// batch's events (here from a stream that lacks its hub subscription) is
// logged with its stack and counted, and releases the reader's lock and
// the stream, so that neither waits for good.
func TestEventReadPanicIsContained(t *testing.T) {
	t.Parallel()
	logger, logs := newLogBuffer()
	r := &Resolver{Logger: logger, Panics: recoverytest.Metrics(t)}
	broken := r.newStream(Viewer{}, true)
	broken.loading = false

	r.events().read([]*stream{broken})
	if got := r.Panics.Count("subscription"); got != 1 {
		t.Errorf("narrate_panics_total{where=subscription} = %v, want 1", got)
	}
	if logged := logs.String(); !strings.Contains(logged, `"stack":"goroutine`) {
		t.Errorf("log lacks the panic's stack:\n%s", logged)
	}
	if !r.events().mu.TryLock() {
		t.Fatal("the event reader's lock is still held: every subscription would stop")
	}
	r.events().mu.Unlock()
	broken.mu.Lock()
	defer broken.mu.Unlock()
	if broken.loading {
		t.Error("the stream is still loading: its later events would wait for good")
	}
}
