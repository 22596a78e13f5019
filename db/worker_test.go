package db_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/db/dbtest"
	"github.com/narrate/narrate/generation"
	"github.com/narrate/narrate/limit"
)

// queueFixture is a user with a verified voice, a story, and generations
// queued by the real StartGeneration, oldest first.
type queueFixture struct {
	tdb   *testDB
	d     *db.DB
	user  uuid.UUID
	story uuid.UUID
	gens  []uuid.UUID
}

func newQueueFixture(t *testing.T, n int) *queueFixture {
	t.Helper()
	tdb := newTestDB(t)
	f := &queueFixture{tdb: tdb, d: openDB(t, tdb.AppURL, 0), user: uuid.New(), story: uuid.New()}
	mustExec(t, tdb.Admin, `INSERT INTO auth.users (id, email) VALUES ($1, $2)`, f.user, f.user.String()+"@example.com")
	mustExec(t, tdb.Admin, `INSERT INTO voice_samples (user_id, elevenlabs_voice_id, verification_phrase, verified) VALUES ($1, 'voice-1', 'x', true)`, f.user)
	mustExec(t, tdb.Admin, `INSERT INTO stories (id, title, slug, content) VALUES ($1, 'The Fox', 'the-fox', 'A fox ran. It was quick.')`, f.story)
	// More generations than the default quotas allow one user.
	mustExec(t, tdb.Admin, `UPDATE generation_limits SET max_active = 1000, daily_characters = 1000000000`)
	for range n {
		f.gens = append(f.gens, f.start(t))
	}
	return f
}

func (f *queueFixture) session() db.Session {
	return db.UserSession(f.user, userClaims(f.user, false))
}

func (f *queueFixture) start(t *testing.T) uuid.UUID {
	t.Helper()
	g, _, err := f.d.StartGeneration(context.Background(), f.session(), f.story, nil, limit.Rate{})
	if err != nil {
		t.Fatalf("start generation: %v", err)
	}
	return g.ID
}

// state is a generation's row as the superuser sees it.
type genState struct {
	Status       string
	Progress     int
	ResultURL    *string
	Metadata     map[string]any
	LeaseOwner   *string
	LeaseExpires *time.Time
	Attempts     int
	UpdatedAt    time.Time
	Logs         []string
}

func (f *queueFixture) state(t *testing.T, id uuid.UUID) genState {
	t.Helper()
	var s genState
	err := f.tdb.Admin.QueryRow(context.Background(), `
		SELECT status::text, progress, result_url, metadata, lease_owner, lease_expires_at, attempts, updated_at,
		  coalesce((SELECT array_agg(event ORDER BY occurred_at, id) FROM generation_logs WHERE generation_id = g.id), '{}')
		FROM story_generations g WHERE id = $1`, id).Scan(
		&s.Status, &s.Progress, &s.ResultURL, &s.Metadata, &s.LeaseOwner, &s.LeaseExpires, &s.Attempts, &s.UpdatedAt, &s.Logs)
	if err != nil {
		t.Fatalf("read generation %s: %v", id, err)
	}
	return s
}

func (f *queueFixture) claim(t *testing.T, owner string, lease time.Duration) db.Job {
	t.Helper()
	job, ok, err := f.d.Claim(context.Background(), owner, lease)
	if err != nil || !ok {
		t.Fatalf("claim = ok %v, err %v; want a job", ok, err)
	}
	return job
}

// recordPart records part index of generation id under owner's lease,
// with progress and a log event ("" for none), as the worker records each
// chunk it narrated.
func (f *queueFixture) recordPart(ctx context.Context, id uuid.UUID, owner string, index, progress int, event string) error {
	return f.d.RecordPart(ctx, id, owner, db.NewPart{
		Index: index, StorageKey: fmt.Sprintf("generations/%s/part-%04d.mp3", id, index+1), ContentType: "audio/mpeg", ByteSize: 1, CharEnd: 1,
	}, progress, event)
}

// wantLogs checks a generation's log, oldest event first.
func wantLogs(t *testing.T, s genState, want ...string) {
	t.Helper()
	if !slices.Equal(s.Logs, want) {
		t.Fatalf("logs = %q, want %q", s.Logs, want)
	}
}

// newClaimedFixture is a fixture whose one generation w1 has claimed for
// a minute.
func newClaimedFixture(t *testing.T) (*queueFixture, uuid.UUID) {
	t.Helper()
	f := newQueueFixture(t, 1)
	return f, f.claim(t, "w1", time.Minute).Generation.ID
}

// expireLease makes a lease look lapsed without waiting for it.
func (f *queueFixture) expireLease(t *testing.T, id uuid.UUID) {
	t.Helper()
	mustExec(t, f.tdb.Admin, `UPDATE story_generations SET lease_expires_at = now() - interval '1 second' WHERE id = $1`, id)
}

func TestClaimTakesOldestPendingWithStoryAndVoice(t *testing.T) {
	t.Parallel()
	f := newQueueFixture(t, 2)
	ctx := context.Background()
	if n, err := f.d.QueueDepth(ctx); err != nil || n != 2 {
		t.Fatalf("queue depth = %d, %v; want 2", n, err)
	}

	before := time.Now()
	job := f.claim(t, "w1", time.Minute)
	if job.Generation.ID != f.gens[0] {
		t.Fatalf("claimed %s, want the oldest %s", job.Generation.ID, f.gens[0])
	}
	if job.Content != "A fox ran. It was quick." || job.StoryTitle != "The Fox" || job.StoryVersion != 1 ||
		job.VoiceID != "voice-1" || job.Attempt != 1 || job.Generation.Status != generation.InProgress {
		t.Fatalf("job = %+v", job)
	}
	s := f.state(t, job.Generation.ID)
	if s.Status != "in_progress" || s.LeaseOwner == nil || *s.LeaseOwner != "w1" || s.Attempts != 1 {
		t.Fatalf("claimed row = %+v", s)
	}
	// The lease runs from the database's clock; allow for clock skew
	// between this process and the server, which share a host.
	if s.LeaseExpires.Before(before.Add(50*time.Second)) || s.LeaseExpires.After(time.Now().Add(70*time.Second)) {
		t.Fatalf("lease expires at %v, want about a minute from %v", s.LeaseExpires, before)
	}
	if s.Metadata["story_version"] != float64(1) || s.Metadata["story_title"] != "The Fox" || s.Metadata["requested_story_version"] != float64(1) {
		t.Fatalf("metadata = %v", s.Metadata)
	}
	if len(s.Logs) != 1 || s.Logs[0] != "claimed" {
		t.Fatalf("logs = %q", s.Logs)
	}

	second := f.claim(t, "w1", time.Minute)
	if second.Generation.ID != f.gens[1] {
		t.Fatalf("second claim got %s, want %s", second.Generation.ID, f.gens[1])
	}
	if _, ok, err := f.d.Claim(ctx, "w1", time.Minute); ok || err != nil {
		t.Fatalf("claim on an empty queue = ok %v, err %v", ok, err)
	}
	if n, err := f.d.QueueDepth(ctx); err != nil || n != 0 {
		t.Fatalf("queue depth = %d, %v; want 0", n, err)
	}
}

func TestClaimReclaimsOnlyExpiredLeases(t *testing.T) {
	t.Parallel()
	f := newQueueFixture(t, 1)
	ctx := context.Background()
	id := f.claim(t, "crashed", time.Minute).Generation.ID

	if _, ok, err := f.d.Claim(ctx, "w2", time.Minute); ok || err != nil {
		t.Fatalf("claim under a live lease = ok %v, err %v; want nothing", ok, err)
	}
	if err := f.recordPart(ctx, id, "crashed", 0, 40, "chunk 1/2"); err != nil {
		t.Fatal(err)
	}
	f.expireLease(t, id)

	job := f.claim(t, "w2", time.Minute)
	if job.Generation.ID != id || job.Attempt != 2 || job.Generation.Progress != 40 {
		t.Fatalf("reclaim = %+v, want %s at attempt 2 keeping progress 40", job, id)
	}
	// The restarted work's progress never moves the bar backwards.
	if err := f.recordPart(ctx, id, "w2", 0, 20, ""); err != nil {
		t.Fatal(err)
	}
	if p := f.state(t, id).Progress; p != 40 {
		t.Fatalf("progress after a lower value = %d, want 40", p)
	}
	s := f.state(t, id)
	if *s.LeaseOwner != "w2" || s.Attempts != 2 {
		t.Fatalf("reclaimed row = %+v", s)
	}
	wantLogs(t, s, "claimed", "chunk 1/2", "claimed: attempt 2, the previous worker stopped renewing its lease")
	// The crashed worker, had it only been slow, can write nothing more.
	for name, write := range leasedWrites(id, "crashed") {
		if err := write(ctx, f.d); !errors.Is(err, db.ErrLeaseLost) {
			t.Errorf("%s by the previous owner: err = %v, want ErrLeaseLost", name, err)
		}
	}
}

// leasedWrites are every write a worker makes under a lease.
func leasedWrites(id uuid.UUID, owner string) map[string]func(context.Context, *db.DB) error {
	return map[string]func(context.Context, *db.DB) error{
		"renew": func(ctx context.Context, d *db.DB) error { return d.RenewLease(ctx, id, owner, time.Minute) },
		"part": func(ctx context.Context, d *db.DB) error {
			return d.RecordPart(ctx, id, owner, db.NewPart{StorageKey: "generations/x/part-0001.mp3", ContentType: "audio/mpeg", ByteSize: 1, CharEnd: 1}, 50, "chunk 2/4")
		},
		"log":      func(ctx context.Context, d *db.DB) error { return d.Log(ctx, id, owner, "retry") },
		"complete": func(ctx context.Context, d *db.DB) error { return d.Complete(ctx, id, owner, "generations/x.mp3", nil) },
		"fail":     func(ctx context.Context, d *db.DB) error { return d.Fail(ctx, id, owner, "boom") },
		"release":  func(ctx context.Context, d *db.DB) error { return d.Release(ctx, id, owner, "shutdown") },
	}
}

func TestLeasedWritesAfterCancelAreLost(t *testing.T) {
	t.Parallel()
	f, id := newClaimedFixture(t)
	ctx := context.Background()

	if _, err := f.d.CancelGeneration(ctx, f.session(), id); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	s := f.state(t, id)
	if s.Status != "failed" || s.LeaseOwner != nil || s.LeaseExpires != nil {
		t.Fatalf("cancelled row = %+v, want failed without a lease", s)
	}
	for name, write := range leasedWrites(id, "w1") {
		if err := write(ctx, f.d); !errors.Is(err, db.ErrLeaseLost) {
			t.Errorf("%s after cancel: err = %v, want ErrLeaseLost", name, err)
		}
	}
	after := f.state(t, id)
	if fmt.Sprint(after.Logs) != "[claimed canceled]" || after.Status != "failed" || after.Progress != 0 {
		t.Fatalf("after lost writes: %+v", after)
	}
	if _, ok, err := f.d.Claim(ctx, "w2", time.Minute); ok || err != nil {
		t.Fatalf("claim of a cancelled generation = ok %v, err %v", ok, err)
	}
}

func TestCompleteFailRelease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("complete", func(t *testing.T) {
		t.Parallel()
		f, id := newClaimedFixture(t)
		key := "generations/" + id.String() + ".mp3"
		if err := f.recordPart(ctx, id, "w1", 0, 50, "chunk 1/2"); err != nil {
			t.Fatal(err)
		}
		if err := f.recordPart(ctx, id, "w1", 1, 99, ""); err != nil {
			t.Fatal(err)
		}
		if err := f.d.Complete(ctx, id, "w1", key, map[string]any{"chunks": 2}); err != nil {
			t.Fatal(err)
		}
		// A retry after a lost answer succeeds and changes nothing; a
		// completion with another key is not this worker's.
		if err := f.d.Complete(ctx, id, "w1", key, map[string]any{"chunks": 3}); err != nil {
			t.Fatalf("repeated completion: %v", err)
		}
		if err := f.d.Complete(ctx, id, "w1", "generations/other.mp3", nil); !errors.Is(err, db.ErrLeaseLost) {
			t.Fatalf("completion with another key: err = %v, want ErrLeaseLost", err)
		}
		s := f.state(t, id)
		if s.Status != "completed" || s.Progress != 100 || s.ResultURL == nil || *s.ResultURL != key ||
			s.Metadata["chunks"] != float64(2) || s.Metadata["story_version"] != float64(1) || s.LeaseOwner != nil {
			t.Fatalf("completed row = %+v", s)
		}
		wantLogs(t, s, "claimed", "chunk 1/2", "completed")
	})
	t.Run("fail", func(t *testing.T) {
		t.Parallel()
		f, id := newClaimedFixture(t)
		if err := f.d.Fail(ctx, id, "w1", "voice not found"); err != nil {
			t.Fatal(err)
		}
		s := f.state(t, id)
		if s.Status != "failed" || s.Metadata["error"] != "voice not found" || s.LeaseOwner != nil {
			t.Fatalf("failed row = %+v", s)
		}
		wantLogs(t, s, "claimed", "failed: voice not found")
	})
	t.Run("release", func(t *testing.T) {
		t.Parallel()
		f, id := newClaimedFixture(t)
		if err := f.recordPart(ctx, id, "w1", 0, 30, ""); err != nil {
			t.Fatal(err)
		}
		if err := f.d.Release(ctx, id, "w1", "worker shutting down"); err != nil {
			t.Fatal(err)
		}
		s := f.state(t, id)
		if s.Status != "pending" || s.Progress != 30 || s.Attempts != 0 || s.LeaseOwner != nil {
			t.Fatalf("released row = %+v, want pending keeping progress 30", s)
		}
		// Released work is claimable at once, as a first attempt.
		if job := f.claim(t, "w2", time.Minute); job.Generation.ID != id || job.Attempt != 1 {
			t.Fatalf("claim after release = %+v", job)
		}
		wantLogs(t, f.state(t, id), "claimed", "released: worker shutting down", "claimed")
	})
}

// TestLongEventsAreClipped: log events and failure reasons longer than the
// log accepts are shortened, on a rune boundary, rather than refused.
func TestLongEventsAreClipped(t *testing.T) {
	t.Parallel()
	f, id := newClaimedFixture(t)
	ctx := context.Background()
	long := strings.Repeat("é", 3000)
	if err := f.d.Log(ctx, id, "w1", long); err != nil {
		t.Fatalf("log a long event: %v", err)
	}
	if err := f.d.Fail(ctx, id, "w1", long); err != nil {
		t.Fatalf("fail with a long reason: %v", err)
	}
	s := f.state(t, id)
	clipped := strings.Repeat("é", 1999) + "…"
	if len(s.Logs) != 3 || s.Logs[1] != clipped || s.Logs[2] != "failed: "+strings.Repeat("é", 1991)+"…" {
		t.Errorf("logs = %q, want the long events clipped to 2000 characters", s.Logs)
	}
	if s.Metadata["error"] != clipped {
		t.Errorf("error = %q, want it clipped", s.Metadata["error"])
	}
}

func TestClaimRecordsStoryVersionAgainstLaterEdits(t *testing.T) {
	t.Parallel()
	f := newQueueFixture(t, 1)
	ctx := context.Background()
	job := f.claim(t, "w1", time.Minute)

	mustExec(t, f.tdb.Admin, `UPDATE stories SET content = 'Rewritten.', title = 'The Wolf', version = version + 1 WHERE id = $1`, f.story)
	if err := f.d.Complete(ctx, job.Generation.ID, "w1", "generations/a.mp3", nil); err != nil {
		t.Fatal(err)
	}
	s := f.state(t, job.Generation.ID)
	if s.Metadata["story_version"] != float64(1) || s.Metadata["story_title"] != "The Fox" {
		t.Fatalf("metadata after the story moved to version 2: %v", s.Metadata)
	}

	// A generation claimed after the edit narrates, and records, the new version.
	next := f.start(t)
	job = f.claim(t, "w1", time.Minute)
	if job.Generation.ID != next || job.StoryVersion != 2 || job.Content != "Rewritten." {
		t.Fatalf("job after edit = %+v", job)
	}
}

func TestClaimWithoutVerifiedVoice(t *testing.T) {
	t.Parallel()
	f := newQueueFixture(t, 1)
	mustExec(t, f.tdb.Admin, `UPDATE voice_samples SET verified = false WHERE user_id = $1`, f.user)
	if job := f.claim(t, "w1", time.Minute); job.VoiceID != "" {
		t.Fatalf("voice id = %q, want empty for an unverified voice", job.VoiceID)
	}
}

func TestConcurrentClaimsTakeEachGenerationOnce(t *testing.T) {
	t.Parallel()
	const n, claimers = 20, 4
	f := newQueueFixture(t, n)
	ctx := context.Background()

	var mu sync.Mutex
	claimed := map[uuid.UUID]string{}
	var wg sync.WaitGroup
	errs := make(chan error, claimers)
	for c := range claimers {
		wg.Go(func() {
			owner := fmt.Sprintf("w%d", c)
			for {
				job, ok, err := f.d.Claim(ctx, owner, time.Minute)
				if err != nil {
					errs <- err
					return
				}
				if !ok {
					return
				}
				mu.Lock()
				if prev, dup := claimed[job.Generation.ID]; dup {
					errs <- fmt.Errorf("%s claimed by %s and %s", job.Generation.ID, prev, owner)
				}
				claimed[job.Generation.ID] = owner
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(claimed) != n {
		t.Fatalf("claimed %d generations, want %d", len(claimed), n)
	}
}

// TestLeaseRenewalIsInvisible checks that a renewal neither moves
// updated_at nor notifies subscribers: the first notification after it is
// the next visible change.
func TestLeaseRenewalIsInvisible(t *testing.T) {
	t.Parallel()
	f := newQueueFixture(t, 1)
	ctx := context.Background()
	id := f.claim(t, "w1", time.Second).Generation.ID
	before := f.state(t, id)

	conn := dbtest.Connect(t, f.tdb.AdminURL)
	dbtest.Exec(t, conn, `LISTEN generation_changes`)

	if err := f.d.RenewLease(ctx, id, "w1", time.Hour); err != nil {
		t.Fatal(err)
	}
	after := f.state(t, id)
	if !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Fatalf("renewal moved updated_at from %v to %v", before.UpdatedAt, after.UpdatedAt)
	}
	if !after.LeaseExpires.After(before.LeaseExpires.Add(time.Minute)) {
		t.Fatalf("lease not extended: %v -> %v", before.LeaseExpires, after.LeaseExpires)
	}
	if err := f.recordPart(ctx, id, "w1", 0, 42, ""); err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := conn.WaitForNotification(waitCtx)
	if err != nil {
		t.Fatal(err)
	}
	var payload struct {
		Status   generation.Status `json:"status"`
		Progress int               `json:"progress"`
	}
	// The status comes in the enum's own spelling (migration 00004).
	if err := json.Unmarshal([]byte(n.Payload), &payload); err != nil || payload.Progress != 42 || payload.Status != generation.InProgress {
		t.Fatalf("first notification after the renewal = %s (%v), want the progress change", n.Payload, err)
	}
	if f.state(t, id).UpdatedAt.Equal(before.UpdatedAt) {
		t.Fatal("a progress change did not move updated_at")
	}
}

// TestUsersCannotSeeOrWriteLeases keeps the users' column grants where the
// first migration put them.
func TestUsersCannotSeeOrWriteLeases(t *testing.T) {
	t.Parallel()
	f := newQueueFixture(t, 1)
	ctx := context.Background()
	user := userIdentity(f.user, false)

	if n, err := execAs(ctx, f.tdb.App, user, `SELECT id, status, progress, result_url, metadata, created_at, updated_at FROM story_generations`); err != nil || n != 1 {
		t.Fatalf("reading the usual columns = %d rows, %v", n, err)
	}
	for _, sql := range []string{
		`SELECT lease_owner FROM story_generations`,
		`SELECT attempts FROM story_generations`,
		`UPDATE story_generations SET lease_owner = 'me', lease_expires_at = now()`,
		`UPDATE story_generations SET attempts = 0`,
	} {
		if _, err := execAs(ctx, f.tdb.App, user, sql); dbtest.SQLState(err) != codeDenied {
			t.Errorf("%s: err = %v, want SQLSTATE %s", sql, err, codeDenied)
		}
	}
}

// batchRecorder records the statements of every batch: the tracer that
// lets a test see the SQL a method sends.
type batchRecorder struct {
	mu      sync.Mutex
	queries []pgx.TraceBatchQueryData
}

func (r *batchRecorder) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}
func (r *batchRecorder) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (r *batchRecorder) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}
func (r *batchRecorder) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queries = append(r.queries, d)
}
func (r *batchRecorder) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// TestClaimUsesTheClaimIndex guards the claim's access path: with many
// finished generations, the claim's candidate scan must use the partial
// index instead of reading them. It explains the very statement Claim
// sends, as a tracer saw it.
func TestClaimUsesTheClaimIndex(t *testing.T) {
	t.Parallel()
	f := newQueueFixture(t, 1)
	ctx := context.Background()
	mustExec(t, f.tdb.Admin, `
		INSERT INTO story_generations (user_id, story_id, status, progress)
		SELECT $1, $2, 'failed', 0 FROM generate_series(1, 5000)`, f.user, f.story)
	mustExec(t, f.tdb.Admin, `ANALYZE story_generations`)

	rec := &batchRecorder{}
	traced, err := db.Open(ctx, f.tdb.AppURL, db.Options{Tracer: rec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(traced.Close)
	if _, _, err := traced.Claim(ctx, "w1", time.Minute); err != nil {
		t.Fatal(err)
	}
	var claim *pgx.TraceBatchQueryData
	for i, q := range rec.queries {
		if strings.Contains(q.SQL, "SKIP LOCKED") {
			claim = &rec.queries[i]
		}
	}
	if claim == nil {
		t.Fatalf("no claim statement among %d traced", len(rec.queries))
	}
	// EXPLAIN without ANALYZE plans the statement without running it.
	rows, _ := f.tdb.Admin.Query(ctx, "EXPLAIN "+claim.SQL, claim.Args...)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if plan := strings.Join(lines, "\n"); !strings.Contains(plan, "story_generations_claim_idx") {
		t.Fatalf("claim plan does not use story_generations_claim_idx:\n%s", plan)
	}
}
