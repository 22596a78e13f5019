package realtime

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/narrate/narrate/generation"
)

// Metrics counts what the Hub and the Listener do. A nil *Metrics is valid
// and records nothing, so metrics stay optional.
type Metrics struct {
	published       prometheus.Counter
	coalesced       prometheus.Counter
	dropped         prometheus.Counter
	subscriptions   prometheus.Gauge
	notifications   prometheus.Counter
	invalidPayloads prometheus.Counter
	reconnects      prometheus.Counter
	connected       prometheus.Gauge
	sockets         prometheus.Gauge
	delivered       prometheus.Counter
	latency         prometheus.Histogram
}

// NewMetrics creates the realtime metrics and registers them on reg. It takes
// a registerer rather than using the global one so that tests and several
// servers in one process can each have their own.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "narrate", Subsystem: "realtime", Name: "events_published_total",
			Help: "Generation change events published to the hub.",
		}),
		coalesced: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "narrate", Subsystem: "realtime", Name: "events_coalesced_total",
			Help: "Pending subscriber events replaced by a later event with the same status.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "narrate", Subsystem: "realtime", Name: "events_dropped_total",
			Help: "Pending subscriber events dropped because one generation changed status too often before the subscriber drained.",
		}),
		subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "narrate", Subsystem: "realtime", Name: "active_subscriptions",
			Help: "Open subscriptions: each streaming GraphQL subscription holds one on the hub.",
		}),
		notifications: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "narrate", Subsystem: "realtime", Name: "notifications_received_total",
			Help: "Notifications received by the listener.",
		}),
		invalidPayloads: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "narrate", Subsystem: "realtime", Name: "invalid_payloads_total",
			Help: "Notifications whose payload could not be parsed.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "narrate", Subsystem: "realtime", Name: "listener_reconnects_total",
			Help: "Successful listener reconnects after the connection dropped.",
		}),
		sockets: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "narrate", Subsystem: "realtime", Name: "open_sockets",
			Help: "Open websocket connections.",
		}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "narrate", Subsystem: "realtime", Name: "events_delivered_total",
			Help: "Subscription events handed to clients' connections.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "narrate", Subsystem: "realtime", Name: "notify_to_send_seconds",
			Help:    "Time from the listener receiving a notification to its event being handed to the client's connection.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "narrate", Subsystem: "realtime", Name: "listener_connected",
			Help: "1 while the listener is connected and listening, else 0.",
		}),
	}
	var errs []error
	for _, c := range []prometheus.Collector{
		m.published, m.coalesced, m.dropped, m.subscriptions,
		m.notifications, m.invalidPayloads, m.reconnects, m.connected,
		m.sockets, m.delivered, m.latency,
	} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("register realtime metrics: %w", err)
	}
	return m, nil
}

func (m *Metrics) incPublished() {
	if m != nil {
		m.published.Inc()
	}
}

func (m *Metrics) incCoalesced() {
	if m != nil {
		m.coalesced.Inc()
	}
}

func (m *Metrics) incDropped() {
	if m != nil {
		m.dropped.Inc()
	}
}

func (m *Metrics) addSubscriptions(n float64) {
	if m != nil {
		m.subscriptions.Add(n)
	}
}

func (m *Metrics) incNotifications() {
	if m != nil {
		m.notifications.Inc()
	}
}

func (m *Metrics) incInvalidPayloads() {
	if m != nil {
		m.invalidPayloads.Inc()
	}
}

func (m *Metrics) incReconnects() {
	if m != nil {
		m.reconnects.Inc()
	}
}

func (m *Metrics) setConnected(up bool) {
	if m == nil {
		return
	}
	if up {
		m.connected.Set(1)
	} else {
		m.connected.Set(0)
	}
}

// SocketOpened counts an opened websocket connection.
func (m *Metrics) SocketOpened() {
	if m != nil {
		m.sockets.Inc()
	}
}

// SocketClosed counts a closed websocket connection.
func (m *Metrics) SocketClosed() {
	if m != nil {
		m.sockets.Dec()
	}
}

// Delivered counts an event handed to a client and, for events that came
// from a notification, observes how long that took.
func (m *Metrics) Delivered(e generation.Event) {
	if m == nil {
		return
	}
	m.delivered.Inc()
	if !e.ReceivedAt.IsZero() {
		m.latency.Observe(time.Since(e.ReceivedAt).Seconds())
	}
}
