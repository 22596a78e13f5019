package api

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/narrate/narrate/graph"
	"github.com/narrate/narrate/recovery"
)

// recoverPanics contains a panic in a handler to its request: it is logged
// with its stack and counted, and the client gets a 500 unless the response
// had begun. net/http recovers a panic on its own goroutines too, but only
// by dropping the connection with a line on the server's error log; and a
// websocket is served on a goroutine of the API's own (Sockets.track), which
// nothing else guards.
func recoverPanics(panics *recovery.Metrics, logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				// A deliberate abort, which net/http handles quietly.
				panic(v)
			}
			panics.Recovered(r.Context(), logger, "http", v)
			WriteError(w, r, http.StatusInternalServerError, graph.CodeInternal, "internal server error")
		}()
		next.ServeHTTP(w, r)
	})
}
