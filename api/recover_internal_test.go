package api

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/narrate/narrate/graph"
	"github.com/narrate/narrate/recovery/recoverytest"
)

func TestRecoverPanics(t *testing.T) {
	t.Parallel()
	panics := recoverytest.Metrics(t)
	h := recoverPanics(panics, slog.New(slog.DiscardHandler), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/abort" {
			panic(http.ErrAbortHandler)
		}
		panic("handler bug")
	}))

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	var body struct {
		Errors []struct {
			Message    string
			Extensions map[string]any
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != http.StatusInternalServerError ||
		len(body.Errors) != 1 || body.Errors[0].Extensions["code"] != graph.CodeInternal {
		t.Fatalf("HTTP %d %s (%v), want 500 with INTERNAL_SERVER_ERROR", rec.Code, rec.Body, err)
	}
	if got := panics.Count("http"); got != 1 {
		t.Errorf("narrate_panics_total{where=http} = %v, want 1", got)
	}

	// net/http's own way to abort a response is passed on untouched.
	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Errorf("aborting handler: recovered %v, want http.ErrAbortHandler passed on", v)
		}
	}()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/abort", nil))
}
