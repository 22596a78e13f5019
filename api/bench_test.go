package api_test

// End-to-end benchmark of one subscription event: a progress UPDATE
// committed in PostgreSQL, its NOTIFY through the listener, the hub, the
// per-event read under the subscriber's row-level security, gqlgen and the
// websocket, to the client decoding it:
//
//	go test -run '^$' -bench SubscriptionEvent -benchtime 2000x ./api/
//
// ns/op is the whole round trip, one event at a time; p50-ms and p99-ms
// are the latency from the UPDATE's commit (Exec returned) to the client
// holding the event. cmd/loadtest measures the same path under load, with
// many sockets in another process.

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/narrate/narrate/app/apptest"
	"github.com/narrate/narrate/generation"
)

func BenchmarkSubscriptionEvent(b *testing.B) {
	const progressOnly = `subscription($id: ID!) { generationProgress(id: $id) { id status progress } }`
	tests := []struct {
		name  string
		query string
		// idle is how many other subscriptions, each on its own socket
		// and generation, stay open meanwhile.
		idle int
	}{
		{"progress", progressOnly, 0},
		{"progress+story", progressQuery, 0},
		{"progress/idle=1000", progressOnly, 1000},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			e := newEnv(b)
			srv := apptest.Start(b, e.DB)
			alice := e.NewUser("alice@example.com", false)
			story := e.story("The Fox", "the-fox")
			gen := e.generation(alice, story, generation.InProgress)
			openIdle(b, e, srv.URL, alice, story, tt.idle)

			c := apptest.DialWS(b, srv.URL, protoTransportWS, apptest.AuthInit(alice.Token))
			c.Ack()
			c.Subscribe("1", tt.query, map[string]any{"id": gen})
			decodeProgress(b, c.NextEvent("1", 10*time.Second), "generationProgress")

			ctx := context.Background()
			var latencies []time.Duration
			progress := 0
			for b.Loop() {
				// 1..100 and round again: every update changes the row,
				// so every one is announced.
				progress = progress%100 + 1
				if _, err := e.Admin.Exec(ctx, `UPDATE story_generations SET progress = $2 WHERE id = $1`, gen, progress); err != nil {
					b.Fatal(err)
				}
				committed := time.Now()
				ev := c.NextEvent("1", 10*time.Second)
				latencies = append(latencies, time.Since(committed))
				if got := decodeProgress(b, ev, "generationProgress"); got.Progress != progress {
					b.Fatalf("event progress %d, want %d", got.Progress, progress)
				}
			}
			slices.Sort(latencies)
			b.ReportMetric(benchMillis(latencies[len(latencies)/2]), "p50-ms")
			b.ReportMetric(benchMillis(latencies[(len(latencies)*99)/100]), "p99-ms")
		})
	}
}

// openIdle opens n subscriptions, one socket each, on n new generations of
// u, and waits for their snapshots.
func openIdle(b *testing.B, e *env, url string, u user, story uuid.UUID, n int) {
	b.Helper()
	if n == 0 {
		return
	}
	gens := e.IDs(`
		INSERT INTO story_generations (user_id, story_id, status)
		SELECT $1, $2, 'in_progress' FROM generate_series(1, $3::int)
		RETURNING id`, u.ID, story, n)
	clients := make([]*wsClient, len(gens))
	for i, g := range gens {
		clients[i] = apptest.DialWS(b, url, protoTransportWS, apptest.AuthInit(u.Token))
		clients[i].Ack()
		clients[i].Subscribe(fmt.Sprint(i), `subscription($id: ID!) { generationProgress(id: $id) { id } }`, map[string]any{"id": g})
	}
	for i, c := range clients {
		if ev := c.NextEvent(fmt.Sprint(i), 10*time.Second); ev.Kind != "data" {
			b.Fatalf("idle subscription %d: got %s %+v", i, ev.Kind, ev.Errors)
		}
	}
}

func benchMillis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
