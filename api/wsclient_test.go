package api_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/narrate/narrate/app/apptest"
)

// progressEvent is the data of a generationProgress event.
type progressEvent struct {
	ID       string
	Status   string
	Progress int
	Story    struct{ Title string }
}

func decodeProgress(t testing.TB, ev event, field string) progressEvent {
	t.Helper()
	if ev.Kind != "data" {
		t.Fatalf("want data, got %s %+v", ev.Kind, ev.Errors)
	}
	var body map[string]progressEvent
	if err := json.Unmarshal(ev.Data, &body); err != nil {
		t.Fatal(err)
	}
	p, ok := body[field]
	if !ok {
		t.Fatalf("no %s in %s", field, ev.Data)
	}
	return p
}

func (p progressEvent) String() string { return fmt.Sprintf("%s/%d", p.Status, p.Progress) }

// progressUntilComplete collects the generationProgress events of
// operation id until the server completes it, waiting up to timeout for
// each.
func progressUntilComplete(t testing.TB, c *wsClient, id string, timeout time.Duration) []progressEvent {
	t.Helper()
	var events []progressEvent
	for {
		ev := c.NextEvent(id, timeout)
		if ev.Kind == "complete" {
			return events
		}
		events = append(events, decodeProgress(t, ev, "generationProgress"))
	}
}

// followGeneration opens a socket on baseURL as token, subscribes operation
// "1" to gen with progressQuery, and returns the client with the snapshot
// every generationProgress subscription starts with.
func followGeneration(t testing.TB, baseURL, proto, token string, gen uuid.UUID) (*wsClient, progressEvent) {
	t.Helper()
	c := apptest.DialWS(t, baseURL, proto, apptest.AuthInit(token))
	c.Ack()
	c.Subscribe("1", progressQuery, map[string]any{"id": gen})
	return c, decodeProgress(t, c.NextEvent("1", 5*time.Second), "generationProgress")
}

// lastProgress is the final event of events, failing the test when there
// is none.
func lastProgress(t testing.TB, events []progressEvent) progressEvent {
	t.Helper()
	if len(events) == 0 {
		t.Fatal("the subscription completed without an event")
	}
	return events[len(events)-1]
}
