package recovery_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/narrate/narrate/recovery"
)

var errBoom = errors.New("boom")

// run calls f on a goroutine of its own, as the boundaries do, and returns
// what its deferred recover made of a panic.
func run(m *recovery.Metrics, logger *slog.Logger, f func()) error {
	done := make(chan error)
	go func() {
		var err error
		defer func() { done <- err }()
		defer func() {
			if v := recover(); v != nil {
				err = m.Recovered(context.Background(), logger, "test", v)
			}
		}()
		f()
	}()
	return <-done
}

func panicsDeepInside() { panic(errBoom) }

func TestRecovered(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := recovery.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := recovery.NewMetrics(reg); err == nil {
		t.Error("registering the counter twice on one registry succeeded")
	}
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))

	err = run(m, logger, panicsDeepInside)
	var pe *recovery.Error
	if !errors.As(err, &pe) || !errors.Is(err, recovery.ErrPanic) || !errors.Is(err, errBoom) || pe.Where != "test" {
		t.Fatalf("recovered %v (%T), want a *recovery.Error wrapping errBoom", err, err)
	}
	if !strings.Contains(string(pe.Stack), "panicsDeepInside") {
		t.Errorf("stack does not show the panicking function:\n%s", pe.Stack)
	}
	if out := logs.String(); !strings.Contains(out, `"stack":`) || !strings.Contains(out, "panicsDeepInside") || !strings.Contains(out, `"where":"test"`) {
		t.Errorf("log lacks the stack or the boundary: %s", out)
	}
	if got := m.Count("test"); got != 1 {
		t.Errorf("narrate_panics_total{where=test} = %v, want 1", got)
	}

	// A value that is not an error still becomes one; nothing wraps it.
	err = run(m, logger, func() { panic("not an error") })
	if !errors.Is(err, recovery.ErrPanic) || errors.Unwrap(err) != nil || !strings.Contains(err.Error(), "not an error") {
		t.Errorf("recovered %v", err)
	}
	if got := m.Count("test"); got != 2 {
		t.Errorf("narrate_panics_total{where=test} = %v, want 2", got)
	}
}

// TestRecoveredWithoutMetrics: nil metrics still recover and log.
func TestRecoveredWithoutMetrics(t *testing.T) {
	t.Parallel()
	if err := run(nil, slog.New(slog.DiscardHandler), panicsDeepInside); !errors.Is(err, recovery.ErrPanic) {
		t.Fatalf("recovered %v", err)
	}
}
