package api_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/narrate/narrate/app/apptest"
	"github.com/narrate/narrate/generation"
)

// sseEvent is one server-sent event of a subscription: "next", with the
// result's data and errors, or "complete".
type sseEvent struct {
	Kind   string
	Data   json.RawMessage
	Errors []gqlError
}

// progress decodes a next event's generationProgress, as "STATUS/progress".
func (ev sseEvent) progress(t *testing.T) string {
	t.Helper()
	var data struct{ GenerationProgress *progressEvent }
	if ev.Kind != "next" || json.Unmarshal(ev.Data, &data) != nil || data.GenerationProgress == nil {
		t.Fatalf("event %+v is no generationProgress result", ev)
	}
	return data.GenerationProgress.String()
}

// subscribeSSE starts a subscription over graphql-sse (distinct
// connections mode) and returns a function that waits for its next event.
func subscribeSSE(t *testing.T, baseURL, token, query string, vars map[string]any) func() sseEvent {
	t.Helper()
	res := apptest.OpenEventStream(t, baseURL, token, query, vars)
	t.Cleanup(func() { _ = res.Body.Close() })
	if res.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d", res.StatusCode)
	}

	events := make(chan sseEvent, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(res.Body)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
				if event == "complete" {
					events <- sseEvent{Kind: "complete"}
				}
			case strings.HasPrefix(line, "data: ") && event == "next":
				ev := sseEvent{Kind: "next"}
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev); err == nil {
					events <- ev
				}
			}
		}
	}()
	return func() sseEvent {
		t.Helper()
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("stream ended early")
			}
			return ev
		case <-time.After(5 * time.Second):
			t.Fatal("no server-sent event within 5 s")
			return sseEvent{}
		}
	}
}

// TestSubscriptionOverServerSentEvents follows a generation over graphql-sse
// (distinct connections mode): the snapshot, each change, then complete.
func TestSubscriptionOverServerSentEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, gen := e.aliceWithGeneration(generation.Pending)
	next := subscribeSSE(t, e.URL, alice.Token, progressQuery, map[string]any{"id": gen})

	if got := next().progress(t); got != "PENDING/0" {
		t.Fatalf("first event %s, want the PENDING/0 snapshot", got)
	}
	e.setProgress(gen, generation.InProgress, 40)
	if got := next().progress(t); got != "IN_PROGRESS/40" {
		t.Fatalf("event %s, want IN_PROGRESS/40", got)
	}
	e.setProgress(gen, generation.Completed, 100)
	if got := next().progress(t); got != "COMPLETED/100" {
		t.Fatalf("event %s, want COMPLETED/100", got)
	}
	if got := next(); got.Kind != "complete" {
		t.Fatalf("got %+v, want the stream to complete", got)
	}
}

func TestServerSentEventsRejectBadToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	req, _ := http.NewRequest(http.MethodPost, e.URL+"/graphql",
		strings.NewReader(`{"query":"subscription { viewerGenerations { id } }"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer not-a-token")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("HTTP %d, want 401", res.StatusCode)
	}
}

// streamToCompletion checks a subscription stream of generation gen,
// given as one string per event: the PENDING/0 snapshot, then each change
// the test makes, then end (the stream's own completion marker).
func (e *env) streamToCompletion(t *testing.T, gen uuid.UUID, events <-chan string, what, end string) {
	t.Helper()
	next := func() string { return receive(t, events, what) }
	if got := next(); got != "PENDING/0" {
		t.Fatalf("first %s %s, want the PENDING/0 snapshot", what, got)
	}
	e.setProgress(gen, generation.InProgress, 40)
	if got := next(); got != "IN_PROGRESS/40" {
		t.Fatalf("%s %s, want IN_PROGRESS/40", what, got)
	}
	e.setProgress(gen, generation.Completed, 100)
	if got := next(); got != "COMPLETED/100" {
		t.Fatalf("%s %s, want COMPLETED/100", what, got)
	}
	if got := next(); got != end {
		t.Fatalf("got %s, want %s", got, end)
	}
}

// receive returns the next value of a stream's channel, failing the test
// when the stream ends or nothing comes within 5 seconds.
func receive(t testing.TB, ch <-chan string, what string) string {
	t.Helper()
	select {
	case v, ok := <-ch:
		if !ok {
			t.Fatalf("stream ended before the next %s", what)
		}
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s within 5 s", what)
	}
	return ""
}

// openEventStream subscribes to a generation's progress over server-sent
// events and returns the open response.
func openEventStream(t *testing.T, url, token string, gen any) *http.Response {
	t.Helper()
	return apptest.OpenEventStream(t, url, token, progressQuery, map[string]any{"id": gen})
}
