package api_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/narrate/narrate/api"
)

// TestRequestIDs checks that every response carries a request id (the
// caller's when it is sane, a fresh one otherwise) and that the request's
// log records carry the same id.
func TestRequestIDs(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var logs bytes.Buffer
	logger := slog.New(api.LogHandler{Handler: slog.NewJSONHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug})})
	srv := httptest.NewServer(api.New(api.Options{Logger: logger}))
	t.Cleanup(srv.Close)

	generated := regexp.MustCompile(`^[0-9a-f]{16}$`)
	for _, tt := range []struct {
		name, sent string
		echoed     bool
	}{
		{"caller's id", "req-42.abc_DEF", true},
		{"none sent", "", false},
		{"unsafe id", "bad id\twith spaces", false},
		{"too long", strings.Repeat("a", 65), false},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/healthz", nil)
		if tt.sent != "" {
			req.Header.Set("X-Request-Id", tt.sent)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		id := res.Header.Get("X-Request-Id")
		switch {
		case tt.echoed && id != tt.sent:
			t.Errorf("%s: X-Request-Id %q, want %q echoed", tt.name, id, tt.sent)
		case !tt.echoed && !generated.MatchString(id):
			t.Errorf("%s: X-Request-Id %q, want a generated id", tt.name, id)
		}

		mu.Lock()
		found := false
		for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			var rec struct {
				Msg       string `json:"msg"`
				RequestID string `json:"request_id"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "http request" && rec.RequestID == id {
				found = true
			}
		}
		mu.Unlock()
		if !found {
			t.Errorf("%s: no log record of the request with request_id %q", tt.name, id)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
