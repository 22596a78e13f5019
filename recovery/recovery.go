// Package recovery contains panics at the boundaries of the goroutines that
// run job or request code: the worker's jobs, subscription streams, the
// websockets' operations, the notification listener's callbacks, HTTP
// handlers. One bad job or event
// must cost that job or that stream, never the whole process.
//
// recover only stops a panic when a deferred function calls it directly, so
// each boundary keeps its own deferred recover and hands the value to
// Metrics.Recovered, which logs it with its stack, counts it and turns it
// into an error the boundary fails its work with:
//
//	defer func() {
//		if v := recover(); v != nil {
//			err = panics.Recovered(ctx, logger, "worker", v)
//		}
//	}()
package recovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// ErrPanic is wrapped by every *Error, so callers can tell a recovered
// panic from other failures with errors.Is.
var ErrPanic = errors.New("panic")

// Error is a recovered panic.
type Error struct {
	// Where names the boundary that recovered it, as in the metric's label.
	Where string
	// Value is what the code panicked with.
	Value any
	// Stack is the panicking goroutine's stack.
	Stack []byte
}

func (e *Error) Error() string { return fmt.Sprintf("panic in %s: %v", e.Where, e.Value) }

// Is reports ErrPanic.
func (e *Error) Is(target error) bool { return target == ErrPanic }

// Unwrap returns the value panicked with when it is an error.
func (e *Error) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// Metrics counts recovered panics in narrate_panics_total, by where they
// were recovered. A nil *Metrics counts nothing; Recovered still logs.
type Metrics struct {
	panics *prometheus.CounterVec
}

// NewMetrics creates the counter and registers it on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{panics: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "narrate_panics_total",
		Help: "Panics recovered at a goroutine boundary, by boundary (worker, subscription, graphql, websocket, listener, http); each cost one job, stream, event or request.",
	}, []string{"where"})}
	if err := reg.Register(m.panics); err != nil {
		return nil, fmt.Errorf("register panic metrics: %w", err)
	}
	return m, nil
}

// Recovered handles v, the value recover returned at the boundary where:
// it logs v with the panicking goroutine's stack (key "stack"), counts it,
// and returns it as an *Error. Call it from the deferred function itself,
// while the stack still holds the panicking frames.
func (m *Metrics) Recovered(ctx context.Context, logger *slog.Logger, where string, v any) *Error {
	e := &Error{Where: where, Value: v, Stack: debug.Stack()}
	if logger == nil {
		logger = slog.Default()
	}
	logger.ErrorContext(ctx, "panic recovered", "where", where, "panic", fmt.Sprint(v), "stack", string(e.Stack))
	if m != nil {
		m.panics.WithLabelValues(where).Inc()
	}
	return e
}

// Count is how many panics were recovered at the boundary where.
func (m *Metrics) Count(where string) float64 {
	if m == nil {
		return 0
	}
	var out dto.Metric
	if err := m.panics.WithLabelValues(where).Write(&out); err != nil {
		return 0
	}
	return out.GetCounter().GetValue()
}
