package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/narrate/narrate/graph"
)

// multipartHeartbeat is how often an idle multipart subscription sends an
// empty part, so proxies and the client know the stream is alive; Apollo's
// router sends one every 5 seconds.
const multipartHeartbeat = 5 * time.Second

// multipartSubscription serves subscriptions over Apollo's multipart HTTP
// protocol, what Apollo Client's HttpLink speaks on its own: the client
// POSTs the subscription with Accept: multipart/mixed;subscriptionSpec="1.0",
// and the response is one multipart/mixed body whose parts are
//
//	{"payload": <execution result>}  one per event
//	{}                                a heartbeat
//	{"payload": null, "errors": [...]} a transport error, the last part
//
// ending with the closing boundary when the subscription completes.
// Queries and mutations sent with that Accept header get one JSON response.
type multipartSubscription struct {
	// Heartbeat is the interval of heartbeats; 0 uses multipartHeartbeat.
	Heartbeat time.Duration
}

var _ graphql.Transport = multipartSubscription{}

func (multipartSubscription) Supports(r *http.Request) bool {
	return wantsMultipartSubscription(r) && jsonTransport{}.Supports(r)
}

func (t multipartSubscription) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	rc, ok := prepare(w, r, exec)
	if !ok {
		return
	}
	if rc.Operation.Operation != ast.Subscription {
		respond(w, r, exec, rc)
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		WriteError(w, r, http.StatusInternalServerError, graph.CodeInternal, "streaming unsupported")
		return
	}
	heartbeat := t.Heartbeat
	if heartbeat <= 0 {
		heartbeat = multipartHeartbeat
	}

	w.Header().Set("Content-Type", `multipart/mixed;boundary="graphql";subscriptionSpec="1.0"`)
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	p := &partWriter{w: w, f: flusher}
	p.open()

	responses, ctx := exec.DispatchOperation(r.Context(), rc)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(heartbeat)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				p.part(struct{}{})
			}
		}
	}()
	for resp := responses(ctx); resp != nil; resp = responses(ctx) {
		p.part(struct {
			Payload *graphql.Response `json:"payload"`
		}{resp})
	}
	close(stop)
	wg.Wait()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		// The stream lives no longer than its token (see authenticate).
		p.part(transportError{Errors: gqlerror.List{{
			Message: "the token expired", Extensions: map[string]any{"code": graph.CodeUnauthenticated},
		}}})
	}
	p.close()
}

// transportError ends a multipart subscription with an error that is not
// the subscription's own.
type transportError struct {
	Payload any           `json:"payload"`
	Errors  gqlerror.List `json:"errors"`
}

// partWriter writes the parts of a multipart/mixed body, one at a time.
type partWriter struct {
	mu sync.Mutex
	w  io.Writer
	f  http.Flusher
}

func (p *partWriter) part(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = io.WriteString(p.w, "\r\nContent-Type: application/json; charset=utf-8\r\n\r\n")
	_, _ = p.w.Write(b)
	// The delimiter goes right after the part, not before the next one:
	// clients read a part as complete only once they see it.
	_, _ = io.WriteString(p.w, "\r\n--graphql")
	p.f.Flush()
}

// open writes the first delimiter.
func (p *partWriter) open() {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = io.WriteString(p.w, "\r\n--graphql")
	p.f.Flush()
}

// close turns the last delimiter into the closing one.
func (p *partWriter) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = io.WriteString(p.w, "--\r\n")
	p.f.Flush()
}
