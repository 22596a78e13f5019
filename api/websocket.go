package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/narrate/narrate/auth"
	"github.com/narrate/narrate/config"
	"github.com/narrate/narrate/graph"
	"github.com/narrate/narrate/recovery"
	"github.com/narrate/narrate/socket"
)

// Websocket close codes the API uses.
const (
	// CloseForbidden rejects a token, at connection_init or once it is no
	// longer valid.
	CloseForbidden = socket.CloseForbidden
	// CloseGoingAway tells clients the server is shutting down, so they
	// reconnect (to another instance).
	CloseGoingAway = socket.CloseGoingAway
)

// Sockets is the realtime side of the API: subscriptions over websockets
// (package socket, with the token taken from connection_init) and the
// server-sent event streams, which Shutdown ends too.
type Sockets struct {
	// KeepAlive is how often idle sockets and event streams are pinged;
	// set it before serving.
	KeepAlive time.Duration
	// Limits caps subscriptions per socket and sockets per user and per
	// client address; set it before serving.
	Limits socket.Limits
	// InitTimeout and WriteTimeout are socket.Config's; zero uses its
	// defaults. Set them before serving.
	InitTimeout, WriteTimeout time.Duration

	verifier *auth.Verifier
	origins  []string
	metrics  *SocketMetrics
	panics   *recovery.Metrics
	logger   *slog.Logger

	once   sync.Once
	server *socket.Server

	mu       sync.Mutex
	streams  map[*eventStream]struct{}
	shutdown bool
	// serving counts the event streams being served, so Wait can join
	// them.
	serving sync.WaitGroup
}

// eventStream is one server-sent event stream.
type eventStream struct{ cancel context.CancelFunc }

// NewSockets makes the realtime side of the API. origins are the browser
// origins allowed besides the server's own (empty: any); panics counts the
// panics the sockets recover.
func NewSockets(verifier *auth.Verifier, origins []string, metrics *SocketMetrics, panics *recovery.Metrics, logger *slog.Logger) *Sockets {
	return &Sockets{
		KeepAlive: socket.DefaultKeepAlive,
		verifier:  verifier,
		origins:   origins,
		metrics:   metrics,
		panics:    panics,
		logger:    logger,
		streams:   map[*eventStream]struct{}{},
	}
}

// Transport is the websocket transport, made on first use with the
// settings then in force.
func (s *Sockets) Transport() *socket.Server {
	s.once.Do(func() {
		s.server = socket.NewServer(socket.Config{
			Authenticate: s.authenticate,
			CheckOrigin:  s.checkOrigin,
			KeepAlive:    s.KeepAlive,
			InitTimeout:  s.InitTimeout,
			WriteTimeout: s.WriteTimeout,
			Limits:       s.Limits,
			Logger:       s.logger,
			Metrics:      s.metrics,
			Panics:       s.panics,
			// A socket keeps only its request id from the upgrade's
			// context, not the request's whole chain of values.
			BaseContext: func(r *http.Request) context.Context {
				return context.WithValue(context.Background(), requestIDKey{}, RequestID(r.Context()))
			},
		})
	})
	return s.server
}

// SocketLimits are the configured caps, in the socket package's terms
// (0: the default; negative: no cap).
func SocketLimits(c config.SocketLimits) socket.Limits {
	return socket.Limits(c)
}

// checkOrigin allows a socket from the server's own origin always, and
// from others as CORS allows them: one rule for HTTP and websockets.
func (s *Sockets) checkOrigin(r *http.Request) bool {
	return socket.SameOrigin(r) || OriginAllowed(s.origins, r.Header.Get("Origin"))
}

// authenticate judges connection_init, before connection_ack. No
// Authorization: an anonymous socket, which may subscribe to nothing
// private. One that is not a string, or an invalid token: 4403. A valid
// token: the socket acts for that user until the token is no longer valid
// (its expiry plus the same leeway HTTP requests get), and then closes
// with 4403.
func (s *Sockets) authenticate(ctx context.Context, payload map[string]any) (socket.Session, error) {
	value, present := authorization(payload)
	if !present {
		return socket.Session{Context: ctx}, nil
	}
	header, isString := value.(string)
	if !isString {
		return socket.Session{}, &socket.CloseError{Code: CloseForbidden, Reason: "Authorization must be a string"}
	}
	ctx, id, err := signIn(ctx, s.verifier, header)
	if err != nil {
		if !errors.Is(err, auth.ErrInvalidToken) {
			s.logger.ErrorContext(ctx, "verify websocket token", "err", err)
			return socket.Session{}, &socket.CloseError{Code: socket.CloseInternalError, Reason: "could not verify the token"}
		}
		return socket.Session{}, &socket.CloseError{Code: CloseForbidden, Reason: "invalid token"}
	}
	if id == nil {
		return socket.Session{Context: ctx}, nil
	}
	return socket.Session{
		Context: ctx,
		User:    id.UserID.String(),
		Until:   id.ValidUntil,
	}, nil
}

// authorization finds the Authorization value in a connection_init
// payload: {"Authorization": ...} with the key in any case, or
// {"headers": {"Authorization": ...}}.
func authorization(payload map[string]any) (any, bool) {
	find := func(m map[string]any) (any, bool) {
		for k, v := range m {
			if strings.EqualFold(k, "authorization") {
				return v, true
			}
		}
		return nil, false
	}
	if v, ok := find(payload); ok {
		return v, true
	}
	if headers, ok := payload["headers"].(map[string]any); ok {
		return find(headers)
	}
	return nil, false
}

// track registers every stream over plain HTTP (server-sent events, and
// Apollo's multipart subscriptions), with a context Shutdown cancels.
func (s *Sockets) track(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isStream(r) {
			next.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		es := &eventStream{cancel: cancel}
		s.mu.Lock()
		if s.shutdown {
			s.mu.Unlock()
			WriteError(w, r, http.StatusServiceUnavailable, graph.CodeInternal, "the server is shutting down; retry")
			return
		}
		s.streams[es] = struct{}{}
		s.serving.Add(1)
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			delete(s.streams, es)
			s.mu.Unlock()
			s.serving.Done()
		}()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// Shutdown starts closing every socket with 1001, ends every event
// stream, and refuses new ones; Wait waits for them to end.
func (s *Sockets) Shutdown() {
	s.mu.Lock()
	s.shutdown = true
	streams := make([]*eventStream, 0, len(s.streams))
	for es := range s.streams {
		streams = append(streams, es)
	}
	s.mu.Unlock()
	for _, es := range streams {
		es.cancel()
	}
	s.once.Do(func() {}) // no transport is made after this
	if s.server != nil {
		s.server.Shutdown()
	}
}

// Wait waits, after Shutdown, until every socket and event stream has
// ended, or ctx ends (the sockets left are then dropped).
func (s *Sockets) Wait(ctx context.Context) error {
	var err error
	if s.server != nil {
		err = s.server.Wait(ctx)
	}
	done := make(chan struct{})
	go func() {
		s.serving.Wait()
		close(done)
	}()
	select {
	case <-done:
		return err
	case <-ctx.Done():
		return errors.Join(err, fmt.Errorf("event streams still open: %w", ctx.Err()))
	}
}
