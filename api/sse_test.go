package api_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/narrate/narrate/generation"
)

// TestSubscriptionOverServerSentEvents follows a generation over graphql-sse
// (distinct connections mode): the snapshot, each change, then complete.
func TestSubscriptionOverServerSentEvents(t *testing.T) {
	t.Parallel()
	e := newRTEnv(t)
	alice := e.NewUser("alice@example.com", false)
	gen := e.generation(alice, e.story("The Fox", "the-fox"), generation.Pending)

	body, _ := json.Marshal(map[string]any{"query": progressQuery, "variables": map[string]any{"id": gen}})
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/graphql", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+alice.Token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d", res.StatusCode)
	}

	events := make(chan string, 16)
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
					events <- "complete"
				}
			case strings.HasPrefix(line, "data: ") && event == "next":
				var msg struct {
					Data struct{ GenerationProgress progressEvent }
				}
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &msg); err == nil {
					events <- msg.Data.GenerationProgress.String()
				}
			}
		}
	}()
	next := func() string {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("stream ended early")
			}
			return ev
		case <-time.After(5 * time.Second):
			t.Fatal("no server-sent event within 5 s")
			return ""
		}
	}

	if got := next(); got != "PENDING/0" {
		t.Fatalf("first event %s, want the PENDING/0 snapshot", got)
	}
	e.setProgress(gen, generation.InProgress, 40)
	if got := next(); got != "IN_PROGRESS/40" {
		t.Fatalf("event %s, want IN_PROGRESS/40", got)
	}
	e.setProgress(gen, generation.Completed, 100)
	if got := next(); got != "COMPLETED/100" {
		t.Fatalf("event %s, want COMPLETED/100", got)
	}
	if got := next(); got != "complete" {
		t.Fatalf("got %s, want the stream to complete", got)
	}
}

func TestServerSentEventsRejectBadToken(t *testing.T) {
	t.Parallel()
	e := newRTEnv(t)
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/graphql",
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
