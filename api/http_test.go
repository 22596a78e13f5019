package api_test

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/narrate/narrate/app/apptest"
)

func TestProbes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		res, body := e.Do(http.MethodGet, path, nil)
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d %q, want 200", path, res.StatusCode, body)
		}
	}
}

func TestReadyzWhenDatabaseIsGone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.App.DB.Close()
	if res, body := e.Do(http.MethodGet, "/readyz", nil); res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz = %d %q with the pool closed, want 503", res.StatusCode, body)
	}
	if res, _ := e.Do(http.MethodGet, "/healthz", nil); res.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz = %d with the pool closed, want 200: the process lives", res.StatusCode)
	}
}

// metricValue returns the value of the sample of name with exactly the
// given labels (in the exposition's alphabetical order), or -1.
func metricValue(t *testing.T, body, name, labels string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name+"{"+labels+"}") + ` (\S+)$`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("%s{%s} = %q: %v", name, labels, m[1], err)
	}
	return v
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for range 3 {
		e.Post("", `{ stories { nodes { id } } }`, nil).Decode(t, &struct{}{})
	}
	e.PostAuth("Bearer nope", `{ stories { nodes { id } } }`)
	e.Do(http.MethodGet, "/no-such-page", nil)

	res, body := e.Do(http.MethodGet, "/metrics", nil)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics = %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	tests := []struct {
		labels string
		want   float64
	}{
		{`code="200",method="POST",route="/graphql"`, 3},
		{`code="401",method="POST",route="/graphql"`, 1},
		{`code="404",method="GET",route="unmatched"`, 1},
	}
	for _, tt := range tests {
		if got := metricValue(t, body, "narrate_http_requests_total", tt.labels); got != tt.want {
			t.Errorf("narrate_http_requests_total{%s} = %v, want %v", tt.labels, got, tt.want)
		}
	}
	if !strings.Contains(body, `narrate_http_request_duration_seconds_count{route="/graphql"} 4`) {
		t.Error("no request duration histogram for /graphql")
	}
	if strings.Contains(body, "/no-such-page") {
		t.Error("a raw path became a label")
	}
}

func TestMetricsWithRuntimeCollectors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.Post("", `{ stories { nodes { id } } }`, nil).Decode(t, &struct{}{})

	_, body := e.Do(http.MethodGet, "/metrics", nil)
	if !regexp.MustCompile(`(?m)^go_goroutines \d+`).MatchString(body) {
		t.Error("no go_goroutines in /metrics")
	}
	if got := metricValue(t, body, "narrate_http_requests_total", `code="200",method="POST",route="/graphql"`); got != 1 {
		t.Errorf("narrate_http_requests_total for /graphql = %v, want 1", got)
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	open := newEnv(t)
	restricted := newEnv(t, apptest.WithCORSOrigins("https://app.example.com", "https://admin.example.com"))

	preflight := func(origin string) http.Header {
		return http.Header{
			"Origin":                         {origin},
			"Access-Control-Request-Method":  {"POST"},
			"Access-Control-Request-Headers": {"authorization, content-type"},
		}
	}
	tests := []struct {
		name       string
		env        *env
		method     string
		header     http.Header
		wantStatus int
		wantOrigin string // empty: no Access-Control-Allow-Origin
	}{
		{"any origin preflight by default", open, http.MethodOptions, preflight("https://evil.example.net"), http.StatusNoContent, "https://evil.example.net"},
		{"any origin request by default", open, http.MethodGet, http.Header{"Origin": {"http://localhost:5173"}}, http.StatusOK, "http://localhost:5173"},
		{"allowed origin preflight", restricted, http.MethodOptions, preflight("https://app.example.com"), http.StatusNoContent, "https://app.example.com"},
		{"allowed origin in another case", restricted, http.MethodOptions, preflight("https://ADMIN.example.com"), http.StatusNoContent, "https://ADMIN.example.com"},
		{"allowed origin request", restricted, http.MethodGet, http.Header{"Origin": {"https://app.example.com"}}, http.StatusOK, "https://app.example.com"},
		{"foreign origin preflight", restricted, http.MethodOptions, preflight("https://evil.example.net"), http.StatusForbidden, ""},
		{"foreign origin request", restricted, http.MethodGet, http.Header{"Origin": {"https://evil.example.net"}}, http.StatusOK, ""},
		{"look-alike origin", restricted, http.MethodOptions, preflight("https://app.example.com.evil.net"), http.StatusForbidden, ""},
		{"no origin", restricted, http.MethodGet, nil, http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := "/graphql?query=%7Bstories%7Bnodes%7Bid%7D%7D%7D"
			res, body := tt.env.on(t).Do(tt.method, path, tt.header)
			if res.StatusCode != tt.wantStatus {
				t.Errorf("status %d %q, want %d", res.StatusCode, body, tt.wantStatus)
			}
			if got := res.Header.Get("Access-Control-Allow-Origin"); got != tt.wantOrigin {
				t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, tt.wantOrigin)
			}
			if res.Header.Get("Access-Control-Allow-Credentials") != "" {
				t.Error("credentials allowed: tokens travel in headers, never cookies")
			}
			if tt.method == http.MethodOptions && tt.wantOrigin != "" {
				methods := res.Header.Get("Access-Control-Allow-Methods")
				headers := strings.ToLower(res.Header.Get("Access-Control-Allow-Headers"))
				if !strings.Contains(methods, "POST") || !strings.Contains(headers, "authorization") || !strings.Contains(headers, "content-type") {
					t.Errorf("preflight allows methods %q headers %q", methods, headers)
				}
			}
		})
	}
}
