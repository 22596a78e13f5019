package socket_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/narrate/narrate/app/apptest"
	"github.com/narrate/narrate/recovery"
	"github.com/narrate/narrate/recovery/recoverytest"
	"github.com/narrate/narrate/socket"
)

// Scripted operations of scriptedExecutor, by their query.
const (
	// opDispatchPanics panics as it starts.
	opDispatchPanics = "subscription dispatchPanics"
	// queryOp is a query, which the socket runs on a goroutine of its own
	// (no Driver); the others are subscriptions, which take the Driver.
	queryOp = "query script"
)

// panicValue, sent to an operation, makes its next response panic; an
// empty value ends the operation.
const panicValue = "panic"

// scriptedExecutor stands in for gqlgen's executor: each operation's
// responses are the values the test sends to its query's channel.
type scriptedExecutor struct {
	mu     sync.Mutex
	values map[string]chan string
}

// send makes the operation of query respond with v.
func (x *scriptedExecutor) send(query, v string) { x.channel(query) <- v }

func (x *scriptedExecutor) channel(query string) chan string {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.values == nil {
		x.values = map[string]chan string{}
	}
	if x.values[query] == nil {
		x.values[query] = make(chan string, 8)
	}
	return x.values[query]
}

func (x *scriptedExecutor) CreateOperationContext(_ context.Context, params *graphql.RawParams) (*graphql.OperationContext, gqlerror.List) {
	op := ast.Subscription
	if params.Query == queryOp {
		op = ast.Query
	}
	return &graphql.OperationContext{RawQuery: params.Query, Operation: &ast.OperationDefinition{Operation: op}}, nil
}

func (x *scriptedExecutor) DispatchOperation(ctx context.Context, rc *graphql.OperationContext) (graphql.ResponseHandler, context.Context) {
	if rc.RawQuery == opDispatchPanics {
		panic("dispatch panics")
	}
	values := x.channel(rc.RawQuery)
	d := socket.DriverFrom(ctx)
	if d == nil || rc.Operation.Operation != ast.Subscription {
		return func(ctx context.Context) *graphql.Response {
			select {
			case v := <-values:
				return respond(v)
			case <-ctx.Done():
				return nil
			}
		}, ctx
	}
	// Driven, as the server's resolvers are: a value is handed over only
	// once the transport has taken the one before.
	ready, taken := make(chan string, 1), make(chan struct{}, 1)
	d.Drive(func() { taken <- struct{}{} })
	go func() {
		for {
			select {
			case v := <-values:
				ready <- v
				d.Ready()
			case <-ctx.Done():
				return
			}
			select {
			case <-taken:
			case <-ctx.Done():
				return
			}
		}
	}()
	return func(context.Context) *graphql.Response { return respond(<-ready) }, ctx
}

func respond(v string) *graphql.Response {
	switch v {
	case "":
		return nil
	case panicValue:
		panic("response panics")
	}
	data, _ := json.Marshal(map[string]string{"value": v})
	return &graphql.Response{Data: data}
}

// DispatchError presents errors as the server's presenter does: a
// recovered panic is a bare INTERNAL_SERVER_ERROR.
func (x *scriptedExecutor) DispatchError(_ context.Context, list gqlerror.List) *graphql.Response {
	presented := make(gqlerror.List, len(list))
	for i, err := range list {
		presented[i] = err
		if errors.Is(err, recovery.ErrPanic) {
			presented[i] = &gqlerror.Error{Message: "internal server error", Extensions: map[string]any{"code": "INTERNAL_SERVER_ERROR"}}
		}
	}
	return &graphql.Response{Errors: presented}
}

// startScripted serves x's operations over websockets, with
// connection_init's payload {"panic": true} making authentication panic.
func startScripted(t *testing.T, x *scriptedExecutor) (url string, panics *recovery.Metrics) {
	t.Helper()
	panics = recoverytest.Metrics(t)
	s := socket.NewServer(socket.Config{
		Logger: slog.New(slog.DiscardHandler),
		Panics: panics,
		Authenticate: func(ctx context.Context, payload map[string]any) (socket.Session, error) {
			if payload["panic"] == true {
				panic("authenticate panics")
			}
			return socket.Session{Context: ctx}, nil
		},
	})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.Do(w, r, x) }))
	t.Cleanup(func() {
		s.Shutdown()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Wait(ctx); err != nil {
			t.Error(err)
		}
		hs.Close()
	})
	return hs.URL, panics
}

// TestPanicsEndTheirOperationOnly: a panic in an operation's code, as it
// starts or in a later response, driven or not, ends that operation with
// an internal error and complete, in both subprotocols; it is logged and
// counted, and the socket and its other operations serve on. A panic with
// no operation to pin it on (authenticating connection_init) closes that
// socket with 4500, and the server serves on.
func TestPanicsEndTheirOperationOnly(t *testing.T) {
	t.Parallel()
	for _, proto := range []string{socket.ProtocolTransportWS, socket.ProtocolLegacyWS} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			x := &scriptedExecutor{}
			url, panics := startScripted(t, x)
			c := apptest.DialWS(t, url, proto, nil)
			c.Ack()
			const good, bad = "subscription good", "subscription bad"
			c.Subscribe("good", good, nil)
			c.Subscribe("bad", bad, nil)
			x.send(good, "g1")
			x.send(bad, "b1")
			wantValue(t, c, "good", "g1")
			wantValue(t, c, "bad", "b1")

			x.send(bad, panicValue)
			wantPanicEnd(t, c, "bad")
			c.Subscribe("dispatch", opDispatchPanics, nil)
			wantPanicEnd(t, c, "dispatch")
			c.Subscribe("query", queryOp, nil)
			x.send(queryOp, panicValue)
			wantPanicEnd(t, c, "query")

			x.send(good, "g2")
			wantValue(t, c, "good", "g2")
			if got := panics.Count("websocket"); got != 3 {
				t.Errorf("narrate_panics_total{where=websocket} = %v, want 3", got)
			}

			broken := apptest.DialWS(t, url, proto, map[string]any{"panic": true})
			if code := broken.WaitClosed(5 * time.Second); code != socket.CloseInternalError {
				t.Errorf("a socket whose connection_init panicked closed with %d, want %d", code, socket.CloseInternalError)
			}
			if got := panics.Count("websocket"); got != 4 {
				t.Errorf("narrate_panics_total{where=websocket} = %v, want 4", got)
			}
			x.send(good, "g3")
			wantValue(t, c, "good", "g3")
			again := apptest.DialWS(t, url, proto, nil)
			again.Ack()
		})
	}
}

// wantValue waits for operation id's next result, carrying value.
func wantValue(t *testing.T, c *apptest.WS, id, value string) {
	t.Helper()
	ev := c.NextEvent(id, 5*time.Second)
	var data struct{ Value string }
	if ev.Kind != "data" || json.Unmarshal(ev.Data, &data) != nil || data.Value != value {
		t.Fatalf("%s: got %+v (data %s), want the value %q", id, ev, ev.Data, value)
	}
}

// wantPanicEnd waits for operation id to end after a panic: a bare
// internal error, then complete.
func wantPanicEnd(t *testing.T, c *apptest.WS, id string) {
	t.Helper()
	ev := c.NextEvent(id, 5*time.Second)
	if ev.Kind != "error" || len(ev.Errors) != 1 || ev.Errors[0].Message != "internal server error" ||
		ev.Errors[0].Extensions["code"] != "INTERNAL_SERVER_ERROR" {
		t.Fatalf("%s: got %+v, want one INTERNAL_SERVER_ERROR", id, ev)
	}
	if ev := c.NextEvent(id, 5*time.Second); ev.Kind != "complete" {
		t.Fatalf("%s: after the error %+v, want complete", id, ev)
	}
}
