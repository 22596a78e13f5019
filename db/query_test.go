package db_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/generation"
	"github.com/narrate/narrate/limit"
)

func adminSession(f *fixture) db.Session { return db.AdminSession(f.M, userClaims(f.M, true)) }
func sessionOf(id uuid.UUID) db.Session  { return db.UserSession(id, userClaims(id, false)) }

func storyTitles(stories []db.Story) []string {
	out := make([]string, len(stories))
	for i, s := range stories {
		out[i] = s.Title
	}
	return out
}

func TestStoriesSearchTakesWildcardsLiterally(t *testing.T) {
	t.Parallel()
	tdb := newTestDB(t)
	d := openDB(t, tdb.AppURL, 0)
	ctx := context.Background()
	for i, title := range []string{
		`100% Pure Fiction`, `100 Percent`, `snake_case Tale`, `Snakeycase Tale`, `Back\slash`, `Backslash`,
	} {
		mustExec(t, tdb.Admin, `INSERT INTO stories (title, slug, content) VALUES ($1, $2, 'Text.')`, title, fmt.Sprintf("story-%d", i))
	}

	tests := []struct {
		search string
		want   []string
	}{
		{search: `%`, want: []string{`100% Pure Fiction`}},
		{search: `0%`, want: []string{`100% Pure Fiction`}},
		{search: `_`, want: []string{`snake_case Tale`}},
		{search: `SNAKE_CASE`, want: []string{`snake_case Tale`}},
		{search: `\`, want: []string{`Back\slash`}},
		{search: `k\s`, want: []string{`Back\slash`}},
		{search: `tale`, want: []string{`Snakeycase Tale`, `snake_case Tale`}},
		{search: `%%`, want: nil},
		{search: ``, want: []string{`100 Percent`, `100% Pure Fiction`, `Back\slash`, `Backslash`, `Snakeycase Tale`, `snake_case Tale`}},
	}
	for _, tc := range tests {
		t.Run(tc.search, func(t *testing.T) {
			t.Parallel()
			got, err := d.Stories(ctx, db.Anonymous(), db.StoriesParams{Limit: 100, Search: tc.search, Columns: db.AllColumns})
			if err != nil {
				t.Fatal(err)
			}
			// Compare as sets: the order is the collation's, tested below.
			titles := storyTitles(got)
			slices.Sort(titles)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(titles, want) {
				t.Fatalf("search %q = %q, want %q", tc.search, titles, want)
			}
		})
	}
}

func TestStoriesKeysetWithEqualTitles(t *testing.T) {
	t.Parallel()
	tdb := newTestDB(t)
	d := openDB(t, tdb.AppURL, 0)
	ctx := context.Background()
	titles := []string{"Same Title", "Same Title", "Alpha", "Same Title", "Zulu", "Same Title", "same title", "Same Title", "Same Titles"}
	for i, title := range titles {
		mustExec(t, tdb.Admin, `INSERT INTO stories (title, slug, content) VALUES ($1, $2, 'Text.')`, title, fmt.Sprintf("s-%d", i))
	}

	tests := []struct {
		name, search string
	}{
		{name: "all"},
		{name: "search", search: "same"},
	}
	for _, tc := range tests {
		for _, limit := range []int{1, 2, 3, 4} {
			t.Run(fmt.Sprintf("%s/limit %d", tc.name, limit), func(t *testing.T) {
				t.Parallel()
				rows, _ := tdb.Admin.Query(ctx, `SELECT id FROM stories WHERE $1 = '' OR title ILIKE '%' || $1 || '%' ORDER BY title, id`, tc.search)
				want, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
				if err != nil {
					t.Fatal(err)
				}

				var got []uuid.UUID
				var after *db.StoryKey
				for page := 0; ; page++ {
					if page > len(titles) {
						t.Fatalf("pagination does not end: %v", got)
					}
					stories, err := d.Stories(ctx, db.Anonymous(), db.StoriesParams{Limit: limit, After: after, Search: tc.search, Columns: db.AllColumns})
					if err != nil {
						t.Fatal(err)
					}
					if len(stories) > limit {
						t.Fatalf("page of %d stories, limit %d", len(stories), limit)
					}
					if len(stories) == 0 {
						break
					}
					for _, s := range stories {
						got = append(got, s.ID)
					}
					last := stories[len(stories)-1]
					after = &db.StoryKey{Title: last.Title, ID: last.ID}
				}
				if !slices.Equal(got, want) {
					t.Fatalf("paged ids = %v\nwant (ORDER BY title, id) %v", got, want)
				}
			})
		}
	}
}

// generationRow is a generation the batching test inserts.
type generationRow struct {
	id, user, story uuid.UUID
	status          string
	createdAt       time.Time
}

// expectGenerations computes, in Go, the page GenerationsByOwner must return
// for key: newest first, ties by id ascending.
func expectGenerations(all []generationRow, key db.OwnerKey, status string, after *db.GenerationKey, limit int) []uuid.UUID {
	var rows []generationRow
	for _, g := range all {
		if g.user != key.UserID || (key.StoryID != uuid.Nil && g.story != key.StoryID) || (status != "" && g.status != status) {
			continue
		}
		if after != nil && !(g.createdAt.Before(after.CreatedAt) || (g.createdAt.Equal(after.CreatedAt) && bytes.Compare(g.id[:], after.ID[:]) > 0)) {
			continue
		}
		rows = append(rows, g)
	}
	slices.SortFunc(rows, func(a, b generationRow) int {
		if c := b.createdAt.Compare(a.createdAt); c != 0 {
			return c
		}
		return bytes.Compare(a.id[:], b.id[:])
	})
	ids := []uuid.UUID{}
	for _, g := range rows[:min(limit, len(rows))] {
		ids = append(ids, g.id)
	}
	return ids
}

func groupByKey[T any](n int, rows []db.Keyed[T], id func(T) uuid.UUID) ([][]uuid.UUID, error) {
	out := make([][]uuid.UUID, n)
	for i := range out {
		out[i] = []uuid.UUID{}
	}
	for _, r := range rows {
		if r.KeyIndex < 0 || r.KeyIndex >= n {
			return nil, fmt.Errorf("key index %d out of range", r.KeyIndex)
		}
		out[r.KeyIndex] = append(out[r.KeyIndex], id(r.Row))
	}
	return out, nil
}

func testGenerationsByOwnerBatches(t *testing.T, tdb *testDB) {
	f, d := tdb.fixtureAndDB(t, 0)
	ctx := context.Background()

	// The fixture's own generations are all created "now"; these are in
	// the past, on a second story, with a tie in created_at.
	s2 := uuid.New()
	mustExec(t, tdb.Admin, `INSERT INTO stories (id, title, slug, content) VALUES ($1, 'Second', $2, 'Text.')`, s2, f.Prefix+"-second")
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	extra := []generationRow{
		{user: f.A, story: s2, status: "completed", createdAt: base},
		{user: f.A, story: s2, status: "pending", createdAt: base.Add(time.Minute)},
		{user: f.A, story: s2, status: "pending", createdAt: base.Add(time.Minute)},
		{user: f.A, story: f.Story, status: "failed", createdAt: base.Add(-time.Hour)},
		{user: f.B, story: f.Story, status: "pending", createdAt: base},
		{user: f.B, story: s2, status: "failed", createdAt: base},
	}
	for i := range extra {
		extra[i].id = uuid.New()
		g := extra[i]
		mustExec(t, tdb.Admin, `INSERT INTO story_generations (id, user_id, story_id, status, created_at) VALUES ($1, $2, $3, $4, $5)`,
			g.id, g.user, g.story, g.status, g.createdAt)
	}
	var all []generationRow
	rows, _ := tdb.Admin.Query(ctx, `SELECT id, user_id, story_id, status::text, created_at FROM story_generations WHERE user_id = ANY($1)`, f.users())
	var g generationRow
	_, err := pgx.ForEachRow(rows, []any{&g.id, &g.user, &g.story, &g.status, &g.createdAt}, func() error {
		all = append(all, g)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	keys := []db.OwnerKey{
		{UserID: f.A},
		{UserID: f.B, StoryID: f.Story},
		{UserID: f.A, StoryID: s2},
		{UserID: f.F},
		{UserID: f.A, StoryID: f.Story},
		{UserID: f.A},
	}
	pending := generation.Pending
	firstA := expectGenerations(all, keys[0], "", nil, 2)
	var afterGen generationRow
	for _, r := range all {
		if r.id == firstA[1] {
			afterGen = r
		}
	}
	after := &db.GenerationKey{CreatedAt: afterGen.createdAt, ID: afterGen.id}

	tests := []struct {
		name    string
		session db.Session
		visible func(uuid.UUID) bool
		status  *generation.Status
		after   *db.GenerationKey
		limit   int
	}{
		{name: "admin", session: adminSession(f), visible: func(uuid.UUID) bool { return true }, limit: 2},
		{name: "admin limit 1", session: adminSession(f), visible: func(uuid.UUID) bool { return true }, limit: 1},
		{name: "admin pending", session: adminSession(f), visible: func(uuid.UUID) bool { return true }, status: &pending, limit: 3},
		{name: "admin after", session: adminSession(f), visible: func(uuid.UUID) bool { return true }, after: after, limit: 2},
		{name: "A sees only A's", session: sessionOf(f.A), visible: func(u uuid.UUID) bool { return u == f.A }, limit: 10},
		{name: "B sees only B's", session: sessionOf(f.B), visible: func(u uuid.UUID) bool { return u == f.B }, limit: 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := d.GenerationsByOwner(ctx, tc.session, keys, db.GenerationFilter{Status: tc.status}, db.PageParams[db.GenerationKey]{Limit: tc.limit, After: tc.after, Columns: db.AllColumns})
			if err != nil {
				t.Fatal(err)
			}
			byKey, err := groupByKey(len(keys), got, func(g db.Generation) uuid.UUID { return g.ID })
			if err != nil {
				t.Fatal(err)
			}
			status := ""
			if tc.status != nil {
				status = string(*tc.status)
			}
			for i, k := range keys {
				want := []uuid.UUID{}
				if tc.visible(k.UserID) {
					want = expectGenerations(all, k, status, tc.after, tc.limit)
				}
				if !slices.Equal(byKey[i], want) {
					t.Errorf("key %d (%v): %v, want %v", i, k, byKey[i], want)
				}
			}
			// A test whose expectations are all empty proves nothing.
			if len(got) == 0 {
				t.Fatal("no rows at all")
			}
		})
	}
}

func testLogsByGenerationBatches(t *testing.T, tdb *testDB) {
	f, d := tdb.fixtureAndDB(t, 0)
	ctx := context.Background()

	// GenPending has 'queued' (now) from the fixture; GenRunning gets four
	// in the past, two at the same instant; GenFailed has none.
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	mustExec(t, tdb.Admin, `INSERT INTO generation_logs (generation_id, event, occurred_at) VALUES
		($1, 'chunk 1', $2), ($1, 'chunk 2', $3), ($1, 'chunk 3', $3), ($1, 'started', $4)`,
		f.GenRunning, base, base.Add(time.Second), base.Add(-time.Second))
	rows, _ := tdb.Admin.Query(ctx, `SELECT id FROM generation_logs WHERE generation_id = $1 ORDER BY occurred_at, id`, f.GenRunning)
	running, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil || len(running) != 4 {
		t.Fatalf("running logs %v, %v", running, err)
	}
	var pendingLog, bLog uuid.UUID
	var at time.Time
	if err := tdb.Admin.QueryRow(ctx, `SELECT id FROM generation_logs WHERE generation_id = $1`, f.GenPending).Scan(&pendingLog); err != nil {
		t.Fatal(err)
	}
	if err := tdb.Admin.QueryRow(ctx, `SELECT id FROM generation_logs WHERE generation_id = $1`, f.GenB).Scan(&bLog); err != nil {
		t.Fatal(err)
	}
	if err := tdb.Admin.QueryRow(ctx, `SELECT occurred_at FROM generation_logs WHERE id = $1`, running[0]).Scan(&at); err != nil {
		t.Fatal(err)
	}

	ids := []uuid.UUID{f.GenPending, f.GenRunning, f.GenFailed, f.GenRunning, f.GenB}
	tests := []struct {
		name    string
		session db.Session
		after   *db.LogKey
		want    [][]uuid.UUID
	}{
		{
			name: "owner", session: sessionOf(f.A),
			want: [][]uuid.UUID{{pendingLog}, running[:2], {}, running[:2], {}},
		},
		{
			name: "owner after first", session: sessionOf(f.A), after: &db.LogKey{OccurredAt: at, ID: running[0]},
			// The cursor applies to every key: the pending log is newer.
			want: [][]uuid.UUID{{pendingLog}, running[1:3], {}, running[1:3], {}},
		},
		{
			// B sees only its own generation's log, under its own key.
			name: "other user", session: sessionOf(f.B),
			want: [][]uuid.UUID{{}, {}, {}, {}, {bLog}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := d.LogsByGeneration(ctx, tc.session, ids, db.PageParams[db.LogKey]{Limit: 2, After: tc.after, Columns: db.AllColumns})
			if err != nil {
				t.Fatal(err)
			}
			byKey, err := groupByKey(len(ids), got, func(l db.Log) uuid.UUID { return l.ID })
			if err != nil {
				t.Fatal(err)
			}
			for i := range ids {
				if !slices.Equal(byKey[i], tc.want[i]) {
					t.Errorf("key %d: %v, want %v", i, byKey[i], tc.want[i])
				}
			}
		})
	}
}

func testStoryWrites(t *testing.T, tdb *testDB) {
	f, d := tdb.fixtureAndDB(t, 0)
	ctx := context.Background()
	adm := adminSession(f)

	s, err := d.CreateStory(ctx, adm, "New", f.Prefix+"-new", "Text.")
	if err != nil || s.Version != 1 {
		t.Fatalf("CreateStory = %+v, %v; want version 1", s, err)
	}
	title := "Newer"
	tests := []struct {
		name string
		run  func() error
		want error
	}{
		{"duplicate slug", func() error { _, err := d.CreateStory(ctx, adm, "Dup", f.Prefix+"-new", "Text."); return err }, db.ErrConflict},
		{"invalid slug", func() error { _, err := d.CreateStory(ctx, adm, "Bad", "Not A Slug", "Text."); return err }, db.ErrInvalid},
		{"empty title", func() error { _, err := d.CreateStory(ctx, adm, "", f.Prefix+"-empty", "Text."); return err }, db.ErrInvalid},
		{"create as user", func() error { _, err := d.CreateStory(ctx, sessionOf(f.A), "T", f.Prefix+"-user", "Text."); return err }, db.ErrForbidden},
		{"create as anon", func() error { _, err := d.CreateStory(ctx, db.Anonymous(), "T", f.Prefix+"-anon", "Text."); return err }, db.ErrForbidden},
		{"stale version", func() error {
			_, err := d.UpdateStory(ctx, adm, s.ID, 7, db.StoryPatch{Title: &title})
			return err
		}, db.ErrConflict},
		{"update missing", func() error {
			_, err := d.UpdateStory(ctx, adm, uuid.New(), 1, db.StoryPatch{Title: &title})
			return err
		}, db.ErrNotFound},
		{"update as user", func() error {
			_, err := d.UpdateStory(ctx, sessionOf(f.A), s.ID, 1, db.StoryPatch{Title: &title})
			return err
		}, db.ErrForbidden},
		{"delete missing", func() error { return d.DeleteStory(ctx, adm, uuid.New()) }, db.ErrNotFound},
		{"delete as user", func() error { return d.DeleteStory(ctx, sessionOf(f.A), s.ID) }, db.ErrNotFound},
	}
	for _, tc := range tests {
		if err := tc.run(); !errors.Is(err, tc.want) {
			t.Errorf("%s: error = %v, want %v", tc.name, err, tc.want)
		}
	}

	updated, err := d.UpdateStory(ctx, adm, s.ID, 1, db.StoryPatch{Title: &title})
	if err != nil || updated.Title != "Newer" || updated.Slug != s.Slug || updated.Version != 2 {
		t.Fatalf("UpdateStory = %+v, %v; want title Newer, same slug, version 2", updated, err)
	}
	if err := d.DeleteStory(ctx, adm, s.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := d.StoryBySlug(ctx, db.Anonymous(), s.Slug, db.AllColumns); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("deleted story: %v, want ErrNotFound", err)
	}
}

func testGenerationWrites(t *testing.T, tdb *testDB) {
	f, d := tdb.fixtureAndDB(t, 0)
	ctx := context.Background()
	mustExec(t, tdb.Admin, `UPDATE stories SET version = 3 WHERE id = $1`, f.Story)

	g, _, err := d.StartGeneration(ctx, sessionOf(f.A), f.Story, nil, limit.Rate{})
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Version int `json:"requested_story_version"`
	}
	if err := json.Unmarshal(g.Metadata, &meta); err != nil || g.Status != generation.Pending || g.UserID != f.A || meta.Version != 3 {
		t.Fatalf("StartGeneration = %+v (metadata %s, %v); want A's pending generation of story version 3", g, g.Metadata, err)
	}
	starts := []struct {
		name  string
		user  uuid.UUID
		story uuid.UUID
		want  error
	}{
		{"unverified voice", f.B, f.Story, db.ErrVoiceNotVerified},
		{"no voice", f.F, f.Story, db.ErrVoiceNotVerified},
		{"missing story", f.A, uuid.New(), db.ErrNotFound},
	}
	for _, tc := range starts {
		if _, _, err := d.StartGeneration(ctx, sessionOf(tc.user), tc.story, nil, limit.Rate{}); !errors.Is(err, tc.want) {
			t.Errorf("StartGeneration %s: error = %v, want %v", tc.name, err, tc.want)
		}
	}

	cancels := []struct {
		name string
		s    db.Session
		id   uuid.UUID
		want error
	}{
		{"completed", sessionOf(f.A), f.GenCompleted, db.ErrConflict},
		{"already failed", sessionOf(f.A), f.GenFailed, db.ErrConflict},
		{"someone else's", sessionOf(f.B), f.GenRunning, db.ErrNotFound},
		{"missing", sessionOf(f.A), uuid.New(), db.ErrNotFound},
	}
	for _, tc := range cancels {
		if _, err := d.CancelGeneration(ctx, tc.s, tc.id); !errors.Is(err, tc.want) {
			t.Errorf("CancelGeneration %s: error = %v, want %v", tc.name, err, tc.want)
		}
	}
	canceled, err := d.CancelGeneration(ctx, sessionOf(f.A), f.GenRunning)
	if err != nil || canceled.Status != generation.Failed {
		t.Fatalf("CancelGeneration = %+v, %v; want failed", canceled, err)
	}
	var events []string
	rows, _ := tdb.Admin.Query(ctx, `SELECT event FROM generation_logs WHERE generation_id = $1`, f.GenRunning)
	if events, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil || !slices.Equal(events, []string{"canceled"}) {
		t.Fatalf("logs after cancel: %v, %v; want [canceled]", events, err)
	}
}

func testUpsertProfile(t *testing.T, tdb *testDB) {
	f, d := tdb.fixtureAndDB(t, 0)
	ctx := context.Background()
	s := sessionOf(f.F)
	name, avatar := "Fresh", "https://example.com/a.png"

	steps := []struct {
		patch      db.ProfilePatch
		wantName   *string
		wantAvatar *string
	}{
		{db.ProfilePatch{DisplayName: &name, SetDisplayName: true}, &name, nil},
		{db.ProfilePatch{AvatarURL: &avatar, SetAvatarURL: true}, &name, &avatar},
		{db.ProfilePatch{SetDisplayName: true}, nil, &avatar},
		{db.ProfilePatch{}, nil, &avatar},
	}
	for i, st := range steps {
		p, err := d.UpsertProfile(ctx, s, st.patch)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if deref(p.DisplayName) != deref(st.wantName) || (p.DisplayName == nil) != (st.wantName == nil) ||
			deref(p.AvatarURL) != deref(st.wantAvatar) || (p.AvatarURL == nil) != (st.wantAvatar == nil) {
			t.Fatalf("step %d: profile %v/%v, want %v/%v", i, p.DisplayName, p.AvatarURL, st.wantName, st.wantAvatar)
		}
	}
	long := string(bytes.Repeat([]byte("x"), 101))
	if _, err := d.UpsertProfile(ctx, s, db.ProfilePatch{DisplayName: &long, SetDisplayName: true}); !errors.Is(err, db.ErrInvalid) {
		t.Fatalf("overlong name: %v, want ErrInvalid", err)
	}

	emails, err := d.UserEmails(ctx, s, f.users())
	if err != nil || len(emails) != 1 || emails[0].ID != f.F {
		t.Fatalf("UserEmails as F = %+v, %v; want F's only", emails, err)
	}
}

// testGenerationPageNested: a page read with GenerationPage is the page
// GenerationsByOwner reads, and the reads nested under it by position
// (GenerationPageStories, LogsOfPage) are what StoriesByID and LogsByGeneration
// read for the page's first nodes generations, under the caller's
// row-level security, all in one round trip.
func testGenerationPageNested(t *testing.T, tdb *testDB) {
	f, d := tdb.fixtureAndDB(t, 0)
	ctx := context.Background()
	s2 := uuid.New()
	mustExec(t, tdb.Admin, `INSERT INTO stories (id, title, slug, content) VALUES ($1, 'Second', $2, 'Text.')`, s2, f.Prefix+"-page")
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i, story := range []uuid.UUID{s2, f.Story, s2, s2} {
		// Two share a created_at: the page breaks the tie by id.
		at := base.Add(time.Duration(min(i, 2)) * time.Minute)
		mustExec(t, tdb.Admin, `WITH g AS (INSERT INTO story_generations (user_id, story_id, status, created_at)
			VALUES ($1, $2, 'completed', $3) RETURNING id)
			INSERT INTO generation_logs (generation_id, event, occurred_at)
			SELECT g.id, 'event ' || n, $3::timestamptz + n * interval '1 second' FROM g, generate_series(1, $4) n`,
			f.A, story, at, i+1)
	}
	pending := generation.Pending
	first, err := d.GenerationsByOwner(ctx, sessionOf(f.A), []db.OwnerKey{{UserID: f.A}}, db.GenerationFilter{},
		db.PageParams[db.GenerationKey]{Limit: 2, Columns: db.AllColumns})
	if err != nil || len(first) != 2 {
		t.Fatalf("first page %v, %v", first, err)
	}
	after := &db.GenerationKey{CreatedAt: first[1].Row.CreatedAt, ID: first[1].Row.ID}

	tests := []struct {
		name    string
		session db.Session
		page    db.GenerationPage
		logs    *db.LogKey
		// empty: the caller sees none of the page's generations.
		empty bool
	}{
		{name: "owner", session: sessionOf(f.A), page: db.GenerationPage{Owner: db.OwnerKey{UserID: f.A}}},
		{name: "owner after", session: sessionOf(f.A), page: db.GenerationPage{Owner: db.OwnerKey{UserID: f.A}, Page: db.PageParams[db.GenerationKey]{After: after}}},
		{name: "owner of one story", session: sessionOf(f.A), page: db.GenerationPage{Owner: db.OwnerKey{UserID: f.A, StoryID: s2}}},
		{name: "owner pending", session: sessionOf(f.A), page: db.GenerationPage{Owner: db.OwnerKey{UserID: f.A}, Filter: db.GenerationFilter{Status: &pending}}},
		{name: "logs after", session: sessionOf(f.A), page: db.GenerationPage{Owner: db.OwnerKey{UserID: f.A}}, logs: &db.LogKey{OccurredAt: base.Add(time.Second), ID: uuid.Max}},
		{name: "another user's page", session: sessionOf(f.B), page: db.GenerationPage{Owner: db.OwnerKey{UserID: f.A}}, empty: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const nodes = 3
			tc.page.Page.Limit, tc.page.Page.Columns = nodes+1, db.AllColumns
			logPage := db.PageParams[db.LogKey]{Limit: 2, After: tc.logs, Columns: db.AllColumns}
			var (
				page    []db.Generation
				stories []db.Story
				logs    []db.Keyed[db.Log]
			)
			var withStories []db.Generation
			err := d.ReadSnapshot(ctx, tc.session, func(q *db.Reads) {
				q.GenerationPage(tc.page, &page)
				q.GenerationPageStories(tc.page, &withStories, db.AllColumns, &stories)
				q.LogsOfPage(tc.page, nodes, logPage, &logs)
			})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(withStories, page) {
				t.Errorf("the page read with its stories %v, want %v", withStories, page)
			}
			if tc.empty {
				if len(page)+len(stories)+len(logs) > 0 {
					t.Fatalf("another user's page: %d generations, %d stories, %d logs", len(page), len(stories), len(logs))
				}
				return
			}
			want, err := d.GenerationsByOwner(ctx, tc.session, []db.OwnerKey{tc.page.Owner}, tc.page.Filter, tc.page.Page)
			if err != nil {
				t.Fatal(err)
			}
			genID := func(g db.Generation) uuid.UUID { return g.ID }
			wantRows := make([]db.Generation, len(want))
			for i, k := range want {
				wantRows[i] = k.Row
			}
			if got, want := idsOf(page, genID), idsOf(wantRows, genID); !slices.Equal(got, want) || len(got) == 0 {
				t.Fatalf("page %v, want %v (not empty)", got, want)
			}
			shown := page[:min(len(page), nodes)]

			wantStories, err := d.StoriesByID(ctx, tc.session, distinctStories(page), db.AllColumns)
			if err != nil {
				t.Fatal(err)
			}
			storyID := func(s db.Story) uuid.UUID { return s.ID }
			got, wantIDs := idsOf(stories, storyID), idsOf(wantStories, storyID)
			slices.SortFunc(got, compareIDs)
			slices.SortFunc(wantIDs, compareIDs)
			if !slices.Equal(got, wantIDs) {
				t.Errorf("stories %v, want %v", got, wantIDs)
			}
			for _, s := range stories {
				if i := slices.IndexFunc(wantStories, func(w db.Story) bool { return w.ID == s.ID }); i < 0 || !reflect.DeepEqual(s, wantStories[i]) {
					t.Errorf("story read with the page %+v, want the one StoriesByID reads", s)
				}
			}

			wantLogs, err := d.LogsByGeneration(ctx, tc.session, idsOf(shown, genID), logPage)
			if err != nil {
				t.Fatal(err)
			}
			gotByKey, err := groupByKey(len(shown), logs, func(l db.Log) uuid.UUID { return l.ID })
			if err != nil {
				t.Fatal(err)
			}
			wantByKey, err := groupByKey(len(shown), wantLogs, func(l db.Log) uuid.UUID { return l.ID })
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(gotByKey, wantByKey, slices.Equal) || len(logs) == 0 {
				t.Errorf("logs by position %v, want %v (not empty)", gotByKey, wantByKey)
			}
		})
	}
}

// idsOf is the id of each row, in order.
func idsOf[T any](rows []T, id func(T) uuid.UUID) []uuid.UUID {
	out := make([]uuid.UUID, len(rows))
	for i, r := range rows {
		out[i] = id(r)
	}
	return out
}

func compareIDs(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) }

// distinctStories are the stories rows narrate, each once.
func distinctStories(rows []db.Generation) []uuid.UUID {
	var out []uuid.UUID
	for _, g := range rows {
		if !slices.Contains(out, g.StoryID) {
			out = append(out, g.StoryID)
		}
	}
	return out
}
