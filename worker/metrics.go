package worker

import (
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/narrate/narrate/voice"
)

// Outcome is how the worker's part in a generation ended, the label of
// narrate_worker_generations_total.
type Outcome string

// The outcomes.
const (
	// OutcomeCompleted: the audio is stored and the generation COMPLETED.
	OutcomeCompleted Outcome = "completed"
	// OutcomeFailed: the generation FAILED with a reason in its log.
	OutcomeFailed Outcome = "failed"
	// OutcomeCanceled: the lease was lost, because the user cancelled the
	// generation or another worker reclaimed it; the worker stopped.
	OutcomeCanceled Outcome = "canceled"
	// OutcomeReleased: the worker shut down and put the generation back in
	// the queue.
	OutcomeReleased Outcome = "released"
	// OutcomeAbandoned: the worker stopped without recording anything (a
	// hard stop, or the database unreachable at shutdown); the lease
	// expires and another worker reclaims the generation.
	OutcomeAbandoned Outcome = "abandoned"
)

// Metrics are the worker's Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	generations    *prometheus.CounterVec
	chunkSeconds   *prometheus.HistogramVec
	providerErrors *prometheus.CounterVec
	queueDepth     prometheus.Gauge
	busy           prometheus.Gauge
}

// NewMetrics creates the worker metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		generations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "narrate_worker_generations_total",
			Help: "Generations this worker stopped working on, by outcome (completed, failed, canceled, released, abandoned).",
		}, []string{"outcome"}),
		chunkSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "narrate_worker_chunk_duration_seconds",
			Help:    "Time the provider took to synthesise one chunk, successful calls only.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120},
		}, []string{"provider"}),
		providerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "narrate_worker_provider_errors_total",
			Help: "Failed synthesis calls, by provider and kind (rate_limited, server_error, voice_not_found, ...).",
		}, []string{"provider", "kind"}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "narrate_worker_queue_depth",
			Help: "PENDING generations, as last counted by this worker.",
		}),
		busy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "narrate_worker_busy_slots",
			Help: "Generations this worker is processing now.",
		}),
	}
	for _, c := range []prometheus.Collector{m.generations, m.chunkSeconds, m.providerErrors, m.queueDepth, m.busy} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register worker metrics: %w", err)
		}
	}
	// Zero series for every outcome so that rates work from the start.
	for _, o := range []Outcome{OutcomeCompleted, OutcomeFailed, OutcomeCanceled, OutcomeReleased, OutcomeAbandoned} {
		m.generations.WithLabelValues(string(o))
	}
	return m, nil
}

func (m *Metrics) finished(o Outcome) {
	if m != nil {
		m.generations.WithLabelValues(string(o)).Inc()
	}
}

func (m *Metrics) chunk(provider string, seconds float64) {
	if m != nil {
		m.chunkSeconds.WithLabelValues(provider).Observe(seconds)
	}
}

func (m *Metrics) providerError(provider string, err error) {
	if m != nil {
		m.providerErrors.WithLabelValues(provider, strings.ReplaceAll(voice.KindOf(err).String(), " ", "_")).Inc()
	}
}

func (m *Metrics) setQueueDepth(n int) {
	if m != nil {
		m.queueDepth.Set(float64(n))
	}
}

func (m *Metrics) setBusy(n int) {
	if m != nil {
		m.busy.Set(float64(n))
	}
}
