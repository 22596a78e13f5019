package app

import (
	"github.com/narrate/narrate/api"
	"log/slog"
	"time"

	"github.com/narrate/narrate/auth"
	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/storage"
)

// settings are what Options may change; defaults() gives production's.
type settings struct {
	mode            Mode
	logger          *slog.Logger
	host            string
	voice           Voice
	store           storage.Store
	verifier        *auth.Verifier
	dbOptions       db.Options
	listenBackoff   time.Duration
	keepAlive       time.Duration
	sockets         func(*api.Sockets)
	shutdownTimeout time.Duration
	skipDevSetup    bool
}

// ShutdownTimeout bounds how long Run's shutdown may take: in-flight
// requests get this long to finish after SIGTERM.
const ShutdownTimeout = 10 * time.Second

func defaults() settings {
	return settings{
		logger:          slog.Default(),
		listenBackoff:   250 * time.Millisecond,
		shutdownTimeout: ShutdownTimeout,
	}
}

// Option replaces one part or setting of the App, mostly for tests.
type Option func(*settings)

// WithMode selects the parts the process runs; ModeServe by default.
func WithMode(m Mode) Option { return func(s *settings) { s.mode = m } }

// WithLogger sets the logger every part logs to.
func WithLogger(l *slog.Logger) Option { return func(s *settings) { s.logger = l } }

// WithHost binds the HTTP port on one host, such as "127.0.0.1"; all
// interfaces by default.
func WithHost(host string) Option { return func(s *settings) { s.host = host } }

// WithVoice replaces the voice provider chosen from the configuration.
func WithVoice(p Voice) Option { return func(s *settings) { s.voice = p } }

// WithStore replaces the audio storage chosen from the configuration.
func WithStore(st storage.Store) Option { return func(s *settings) { s.store = st } }

// WithVerifier replaces the token verifier built from the configuration.
func WithVerifier(v *auth.Verifier) Option { return func(s *settings) { s.verifier = v } }

// WithDBOptions sets the pool's options, such as a tracer counting
// statements.
func WithDBOptions(o db.Options) Option { return func(s *settings) { s.dbOptions = o } }

// WithListenBackoff sets the notification listener's shortest delay
// between reconnection attempts (the longest is four times it).
func WithListenBackoff(d time.Duration) Option { return func(s *settings) { s.listenBackoff = d } }

// WithKeepAlive sets how often idle websockets are pinged.
func WithKeepAlive(d time.Duration) Option { return func(s *settings) { s.keepAlive = d } }

// WithSockets adjusts the websocket side's settings (caps, timeouts)
// before it serves.
func WithSockets(edit func(*api.Sockets)) Option { return func(s *settings) { s.sockets = edit } }

// WithShutdownTimeout bounds Run's shutdown.
func WithShutdownTimeout(d time.Duration) Option {
	return func(s *settings) { s.shutdownTimeout = d }
}

// WithoutDevSetup leaves a local cluster's catalogue empty and logs no
// development token.
func WithoutDevSetup() Option { return func(s *settings) { s.skipDevSetup = true } }
