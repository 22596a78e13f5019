package api_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/narrate/narrate/generation"
)

// TestNestedPageStatementCount checks that the nested fields of a page of
// generations are batched: the number of statements does not grow with
// the page size, and the page and everything under it take one round trip
// to the database.
func TestNestedPageStatementCount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.NewUser("alice@example.com", false)
	stories := make([]any, 5)
	for i := range stories {
		stories[i] = e.story(fmt.Sprintf("Story %d", i), fmt.Sprintf("story-%d", i))
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e.Exec(`INSERT INTO story_generations (user_id, story_id, status, created_at)
		SELECT $1, (ARRAY[$2, $3, $4, $5, $6]::uuid[])[1 + i % 5], 'pending', $7::timestamptz + i * interval '1 second'
		FROM generate_series(1, 60) i`, append(append([]any{alice.ID}, stories...), base)...)
	e.Exec(`INSERT INTO generation_logs (generation_id, event, occurred_at)
		SELECT g.id, 'event ' || i, g.created_at + i * interval '1 millisecond'
		FROM story_generations g, generate_series(1, 4) i`)

	const q = `query($n: Int) { viewer { generations(first: $n) { nodes {
		story { title } logs(first: 3) { nodes { event } } user { email } } } } }`
	statements := func(n int) (statements, trips int64) {
		t.Helper()
		var got struct {
			Viewer struct {
				Generations struct {
					Nodes []struct {
						Story struct{ Title string }
						Logs  struct{ Nodes []struct{ Event string } }
						User  struct{ Email string }
					}
				}
			}
		}
		before, tripsBefore := e.Statements.Load(), e.RoundTrips.Load()
		e.Post(alice.Token, q, map[string]any{"n": n}).Decode(t, &got)
		used, trips := e.Statements.Load()-before, e.RoundTrips.Load()-tripsBefore
		nodes := got.Viewer.Generations.Nodes
		if len(nodes) != n {
			t.Fatalf("first %d: %d nodes", n, len(nodes))
		}
		for _, g := range nodes {
			if g.Story.Title == "" || len(g.Logs.Nodes) != 3 || g.User.Email != alice.Email {
				t.Fatalf("first %d: incomplete node %+v", n, g)
			}
		}
		return used, trips
	}

	small, smallTrips := statements(5)
	large, largeTrips := statements(50)
	if small != large {
		t.Errorf("statements: %d for 5 generations, %d for 50; want the same", small, large)
	}
	// One statement each for the generations, their stories, their logs
	// and the owner's email.
	if large > 4 {
		t.Errorf("%d statements for a page of 50, want at most 4", large)
	}
	if small == 0 {
		t.Error("no statements counted: the counter is not wired")
	}
	if smallTrips != 1 || largeTrips != 1 {
		t.Errorf("round trips: %d for 5 generations, %d for 50; want 1", smallTrips, largeTrips)
	}
}

func BenchmarkNestedPage(b *testing.B) {
	e := newEnv(b)
	alice := e.NewUser("alice@example.com", false)
	story := e.story("Story", "story")
	for range 50 {
		g := e.generation(alice, story, generation.Pending)
		e.logAt(g, "started", time.Now())
	}
	const q = `{ viewer { generations(first: 50) { nodes { story { title } logs(first: 3) { nodes { event } } user { email } } } } }`
	for b.Loop() {
		e.Post(alice.Token, q, nil).Decode(b, &struct{}{})
	}
}
