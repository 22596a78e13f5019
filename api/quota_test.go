package api_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/narrate/narrate/app/apptest"
	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/generation"
	"github.com/narrate/narrate/graph"
	"github.com/narrate/narrate/limit"
)

const startMutation = `mutation($id: ID!, $key: String) { startGeneration(storyId: $id, idempotencyKey: $key) { id status } }`

// quotaEnv is what the quota tests start from: two servers sharing one
// database, as two processes of a deployment would, Alice, who may start
// narrations, and a story.
type quotaEnv struct {
	a, b  *env
	alice user
	story uuid.UUID
}

// twoInstances starts a quotaEnv whose servers limit starts to rate and
// whose database caps them at maxActive at once and daily characters.
func twoInstances(t *testing.T, rate limit.Rate, maxActive int, daily int64) quotaEnv {
	t.Helper()
	limits := withLimits(func(l *limit.Settings) { l.StartGenerationRate = rate })
	a := newEnv(t, limits)
	b := &env{t: t, Server: apptest.Start(t, a.DB, limits)}
	if err := a.App.DB.SetGenerationLimits(context.Background(), maxActive, daily); err != nil {
		t.Fatal(err)
	}
	return quotaEnv{a: a, b: b, alice: a.narrator("alice@example.com"), story: a.story("The Fox", "the-fox")}
}

// startAll sends n startGeneration requests at once, alternating between
// the servers, and returns the responses.
func startAll(servers []*env, token string, story uuid.UUID, n int, key func(i int) any) []response {
	out := make([]response, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			out[i] = servers[i%len(servers)].Post(token, startMutation, map[string]any{"id": story, "key": key(i)})
		})
	}
	wg.Wait()
	return out
}

// tally counts the successes and checks every failure is RATE_LIMITED.
func tally(t *testing.T, rs []response) (ok int, limited []response) {
	t.Helper()
	for _, r := range rs {
		if len(r.Errors) == 0 {
			ok++
			continue
		}
		r.WantCode(t, graph.CodeRateLimited)
		limited = append(limited, r)
	}
	return ok, limited
}

func noKey(int) any { return nil }

func TestStartGenerationRateHoldsAcrossInstances(t *testing.T) {
	t.Parallel()
	q := twoInstances(t, limit.Rate{Burst: 3, Per: time.Hour}, 100, 1<<40)
	a, b, alice, story := q.a, q.b, q.alice, q.story
	bob := a.narrator("bob@example.com")

	ok, limited := tally(t, startAll([]*env{a, b}, alice.Token, story, 12, noKey))
	if ok != 3 {
		t.Fatalf("%d of 12 concurrent starts on two servers succeeded, want the burst of 3", ok)
	}
	for _, r := range limited {
		// One token per 20 minutes.
		if s, _ := r.Errors[0].Extensions["retryAfter"].(float64); s < 1 || s > 1200 {
			t.Errorf("retryAfter = %v, want 1..1200 seconds", r.Errors[0].Extensions["retryAfter"])
		}
	}
	a.WantCount(3, `SELECT count(*) FROM story_generations WHERE user_id = $1`, alice.ID)
	// Buckets are per user.
	b.Post(bob.Token, startMutation, map[string]any{"id": story}).Decode(t, &struct{}{})

	// Refilled (as an hour passing would), Alice may start again.
	a.Exec(`UPDATE rate_limit_buckets SET updated_at = updated_at - interval '1 hour' WHERE user_id = $1`, alice.ID)
	ok, _ = tally(t, startAll([]*env{a, b}, alice.Token, story, 5, noKey))
	if ok != 3 {
		t.Errorf("after a refill %d of 5 starts succeeded, want 3", ok)
	}
}

func TestTokenBucketEdges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name string
		rate limit.Rate
		// elapsed is how long ago the bucket was last used, after taking
		// `taken` tokens at once.
		taken    int
		elapsed  time.Duration
		wantWait time.Duration // 0: granted
	}{
		{name: "burst of 1, first call", rate: limit.Rate{Burst: 1, Per: time.Minute}, taken: 0, wantWait: 0},
		{name: "burst of 1, second call", rate: limit.Rate{Burst: 1, Per: time.Minute}, taken: 1, wantWait: time.Minute},
		{name: "last token of a burst", rate: limit.Rate{Burst: 5, Per: time.Hour}, taken: 4, wantWait: 0},
		{name: "one past the burst", rate: limit.Rate{Burst: 5, Per: time.Hour}, taken: 5, wantWait: 12 * time.Minute},
		{name: "half refilled", rate: limit.Rate{Burst: 2, Per: time.Minute}, taken: 2, elapsed: 15 * time.Second, wantWait: 15 * time.Second},
		{name: "one token refilled", rate: limit.Rate{Burst: 2, Per: time.Minute}, taken: 2, elapsed: 30 * time.Second, wantWait: 0},
		{name: "idle far longer than a refill", rate: limit.Rate{Burst: 2, Per: time.Minute}, taken: 2, elapsed: 24 * time.Hour, wantWait: 0},
		{name: "unlimited", rate: limit.Rate{}, taken: 100, wantWait: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e.on(t)
			ctx := context.Background()
			u := e.NewUser(uuid.NewString()+"@example.com", false)
			for range tt.taken {
				if err := e.App.DB.TakeToken(ctx, sessionOf(u), "startGeneration", tt.rate); err != nil {
					t.Fatal(err)
				}
			}
			if tt.elapsed > 0 {
				e.Exec(`UPDATE rate_limit_buckets SET updated_at = updated_at - $2::interval WHERE user_id = $1`,
					u.ID, fmt.Sprintf("%d milliseconds", tt.elapsed.Milliseconds()))
			}
			var wait time.Duration
			var limited *db.RateLimitError
			if err := e.App.DB.TakeToken(ctx, sessionOf(u), "startGeneration", tt.rate); errors.As(err, &limited) {
				wait = limited.Wait
			} else if err != nil {
				t.Fatal(err)
			}
			// The bucket's clock moves on while the test runs: allow a second.
			if wait < tt.wantWait-time.Second || wait > tt.wantWait || (tt.wantWait == 0) != (wait == 0) {
				t.Errorf("wait = %v, want %v", wait, tt.wantWait)
			}
		})
	}
}

func TestVoiceMutationsAreRateLimited(t *testing.T) {
	t.Parallel()
	fake := newFakeElevenLabs(t)
	e := newEnv(t, withVoice(fake.provider()), withLimits(func(l *limit.Settings) {
		l.CreateVoiceSampleRate = limit.Rate{Burst: 2, Per: time.Hour}
		l.VerifyVoiceSampleRate = limit.Rate{Burst: 1, Per: time.Hour}
	}))
	alice := e.NewUser("alice@example.com", false)

	e.mustCreateSample(alice.Token, audio("a.mp3", "audio/mpeg"))
	sample := e.mustCreateSample(alice.Token, audio("b.mp3", "audio/mpeg"))
	r := e.createSample(alice.Token, "", audio("c.mp3", "audio/mpeg"))
	r.WantCode(t, graph.CodeRateLimited)
	if s, _ := r.Errors[0].Extensions["retryAfter"].(float64); s < 1 {
		t.Errorf("retryAfter = %v", r.Errors[0].Extensions["retryAfter"])
	}
	if clones := fake.state().Clones; len(clones) != 2 {
		t.Errorf("provider cloned %d voices, want 2: the refused call must not reach it", len(clones))
	}

	fake.setTranscript("entirely wrong words here")
	e.verifySample(alice.Token, audio("p.webm", "audio/webm")).WantCode(t, graph.CodeBadUserInput)
	fake.setTranscript(sample.VerificationPhrase)
	e.verifySample(alice.Token, audio("p.webm", "audio/webm")).WantCode(t, graph.CodeRateLimited)
	if n := len(fake.state().Transcripts); n != 1 {
		t.Errorf("provider transcribed %d recordings, want 1", n)
	}
}

func TestActiveGenerationCap(t *testing.T) {
	t.Parallel()
	q := twoInstances(t, limit.Rate{}, 2, 1<<40)
	a, b, alice, story := q.a, q.b, q.alice, q.story

	ok, limited := tally(t, startAll([]*env{a, b}, alice.Token, story, 8, noKey))
	if ok != 2 {
		t.Fatalf("%d of 8 concurrent starts succeeded, want the cap of 2", ok)
	}
	if !strings.Contains(limited[0].Errors[0].Message, "at most 2") {
		t.Errorf("message %q does not give the cap", limited[0].Errors[0].Message)
	}
	// Supabase's REST API inserts as the user: the database refuses too.
	err := a.asUser(alice, `INSERT INTO story_generations (user_id, story_id) VALUES ($1, $2)`, alice.ID, story)
	if err == nil || !strings.Contains(err.Error(), "NQ001") {
		t.Fatalf("direct insert: %v, want the NQ001 refusal", err)
	}
	// Finishing one (here: cancelling) frees a slot.
	var gen string
	a.Scan(`SELECT id::text FROM story_generations WHERE user_id = $1 LIMIT 1`, []any{alice.ID}, &gen)
	b.Post(alice.Token, `mutation($id: ID!) { cancelGeneration(id: $id) { status } }`, map[string]any{"id": gen}).Decode(t, &struct{}{})
	a.Post(alice.Token, startMutation, map[string]any{"id": story}).Decode(t, &struct{}{})
	b.Post(alice.Token, startMutation, map[string]any{"id": story}).WantCode(t, graph.CodeRateLimited)
	// The worker and operators are not held to it.
	a.generation(alice, story, generation.Pending)
}

func TestDailyCharacterBudget(t *testing.T) {
	t.Parallel()
	// The story has 17 characters: two fit in 34, not in 33.
	q := twoInstances(t, limit.Rate{}, 100, 34)
	a, b, alice, story := q.a, q.b, q.alice, q.story

	ok, limited := tally(t, startAll([]*env{a, b}, alice.Token, story, 6, noKey))
	if ok != 2 {
		t.Fatalf("%d of 6 starts succeeded, want 2 within 34 characters", ok)
	}
	retry, _ := limited[0].Errors[0].Extensions["retryAfter"].(float64)
	if untilMidnight := time.Until(time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)).Seconds(); retry < untilMidnight-5 || retry > untilMidnight+5 {
		t.Errorf("retryAfter = %v, want the %.0f seconds until midnight UTC", retry, untilMidnight)
	}
	err := a.asUser(alice, `INSERT INTO story_generations (user_id, story_id) VALUES ($1, $2)`, alice.ID, story)
	if err == nil || !strings.Contains(err.Error(), "NQ002") {
		t.Fatalf("direct insert: %v, want the NQ002 refusal", err)
	}
	// Yesterday's usage does not count today.
	a.Exec(`UPDATE generation_usage SET day = day - 1 WHERE user_id = $1`, alice.ID)
	b.Post(alice.Token, startMutation, map[string]any{"id": story}).Decode(t, &struct{}{})
}

func TestOnePaidMutationPerRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.narrator("alice@example.com")
	story := e.story("The Fox", "the-fox")
	tests := []struct {
		name, query string
	}{
		{"two aliased starts", `mutation($id: ID!) { a: startGeneration(storyId: $id) { id } b: startGeneration(storyId: $id) { id } }`},
		{"start and verify", `mutation($id: ID!, $r: Upload) { startGeneration(storyId: $id) { id } verifyVoiceSample(recording: $r) { id } }`},
		{"through a fragment", `fragment S on Mutation { startGeneration(storyId: $id) { id } } mutation($id: ID!) { ...S x: startGeneration(storyId: $id) { id } }`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.on(t)
			r := e.Post(alice.Token, tt.query, map[string]any{"id": story})
			if len(r.Errors) == 0 || r.Codes()[0] != graph.CodeBadUserInput && r.Codes()[0] != "GRAPHQL_VALIDATION_FAILED" {
				t.Fatalf("codes %q, want a refusal: %s", r.Codes(), r.Raw)
			}
			r.WantNoData(t)
			e.WantCount(0, `SELECT count(*) FROM story_generations`)
		})
	}
}

func TestStartGenerationIdempotencyKey(t *testing.T) {
	t.Parallel()
	q := twoInstances(t, limit.Rate{Burst: 2, Per: time.Hour}, 100, 1<<40)
	a, b, alice, story := q.a, q.b, q.alice, q.story
	bob := a.narrator("bob@example.com")

	// Concurrent retries of one request on both servers: one generation.
	rs := startAll([]*env{a, b}, alice.Token, story, 6, func(int) any { return "order-1" })
	ids := map[string]bool{}
	for _, r := range rs {
		var out struct{ StartGeneration struct{ ID string } }
		r.Decode(t, &out)
		ids[out.StartGeneration.ID] = true
	}
	if len(ids) != 1 {
		t.Fatalf("the same key gave %d generations: %v", len(ids), ids)
	}
	if n := a.Count(`SELECT count(*) FROM story_generations WHERE user_id = $1`, alice.ID); n != 1 {
		t.Fatalf("%d generations stored, want 1", n)
	}
	// A retry does not take a token: one more key still fits the burst of 2.
	a.Post(alice.Token, startMutation, map[string]any{"id": story, "key": "order-2"}).Decode(t, &struct{}{})
	a.Post(alice.Token, startMutation, map[string]any{"id": story, "key": "order-3"}).WantCode(t, graph.CodeRateLimited)
	a.Post(alice.Token, startMutation, map[string]any{"id": story, "key": "order-1"}).Decode(t, &struct{}{})
	// Keys are per user.
	b.Post(bob.Token, startMutation, map[string]any{"id": story, "key": "order-1"}).Decode(t, &struct{}{})
	if n := a.Count(`SELECT count(*) FROM story_generations WHERE user_id = $1`, bob.ID); n != 1 {
		t.Errorf("bob has %d generations, want his own", n)
	}
	for _, key := range []string{"", "   ", strings.Repeat("k", 201)} {
		a.Post(alice.Token, startMutation, map[string]any{"id": story, "key": key}).WantCode(t, graph.CodeBadUserInput)
	}
}
