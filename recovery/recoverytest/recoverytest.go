// Package recoverytest gives tests a panic counter of their own, to check
// that a boundary recovered and counted the panic they injected.
package recoverytest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/narrate/narrate/recovery"
)

// Metrics returns narrate_panics_total on a registry of its own.
func Metrics(t testing.TB) *recovery.Metrics {
	t.Helper()
	m, err := recovery.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return m
}
