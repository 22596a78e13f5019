package dbtest

import (
	"fmt"
	"testing"
	"time"
)

// WaitLimit is how long WaitFor waits by default. It only keeps a broken
// test from hanging: nothing is timed by it.
const WaitLimit = 30 * time.Second

// pollInterval is how often WaitFor checks its condition.
const pollInterval = 5 * time.Millisecond

// WaitFor waits until cond holds, checking it every few milliseconds, and
// fails the test with the message when it does not within limit (WaitLimit
// when zero). It stands in for sleeps: a test waits for the state it needs,
// not for a time it hopes is long enough.
func WaitFor(t testing.TB, limit time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	if err := Eventually(limit, cond); err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(format, args...), err)
	}
}

// Eventually waits until cond holds or limit (WaitLimit when zero) passes;
// it is WaitFor for goroutines other than the test's, which must not call
// t.Fatal.
func Eventually(limit time.Duration, cond func() bool) error {
	if limit <= 0 {
		limit = WaitLimit
	}
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", limit)
		}
		time.Sleep(pollInterval)
	}
	return nil
}
