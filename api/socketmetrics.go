package api

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// SocketMetrics counts the open websockets. A nil *SocketMetrics records
// nothing.
type SocketMetrics struct {
	open prometheus.Gauge
}

// NewSocketMetrics creates the socket metrics and registers them on reg.
func NewSocketMetrics(reg prometheus.Registerer) (*SocketMetrics, error) {
	m := &SocketMetrics{open: prometheus.NewGauge(prometheus.GaugeOpts{
		// The name predates the move from package realtime; dashboards
		// and cmd/loadtest read it.
		Namespace: "narrate", Subsystem: "realtime", Name: "open_sockets",
		Help: "Open websocket connections.",
	})}
	if err := reg.Register(m.open); err != nil {
		return nil, fmt.Errorf("register socket metrics: %w", err)
	}
	return m, nil
}

// SocketOpened counts an opened websocket connection.
func (m *SocketMetrics) SocketOpened() {
	if m != nil {
		m.open.Inc()
	}
}

// SocketClosed counts a closed websocket connection.
func (m *SocketMetrics) SocketClosed() {
	if m != nil {
		m.open.Dec()
	}
}
