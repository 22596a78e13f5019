package api_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/narrate/narrate/generation"
	"github.com/narrate/narrate/graph"
)

// pageInfo is a connection's PageInfo.
type pageInfo struct {
	HasNextPage bool
	EndCursor   *string
}

// idPage is a connection page of which only the node ids are asked for.
type idPage struct {
	Nodes []struct{ ID string }
	Edges []struct {
		Cursor string
		Node   struct{ ID string }
	}
	PageInfo pageInfo
}

func (p idPage) ids() []string {
	out := make([]string, len(p.Nodes))
	for i, n := range p.Nodes {
		out[i] = n.ID
	}
	return out
}

func strs(ids ...uuid.UUID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}

func TestViewerAnonymous(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.NewUser("alice@example.com", false)

	r := e.Post("", `{ viewer { id email } }`, nil)
	var got struct{ Viewer *struct{ ID string } }
	r.Decode(t, &got)
	if got.Viewer != nil {
		t.Errorf("anonymous viewer = %+v, want null", got.Viewer)
	}
}

func TestViewerFields(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.NewUser("alice@example.com", false)
	bob := e.NewUser("bob@example.com", false)

	const q = `{ viewer { id email profile { userId displayName avatarUrl createdAt } voiceSample { elevenlabsVoiceId verificationPhrase verified } } }`
	type viewer struct {
		ID      string
		Email   *string
		Profile *struct {
			UserID      string
			DisplayName *string
			AvatarURL   *string
			CreatedAt   string
		}
		VoiceSample *struct {
			ElevenlabsVoiceID  string
			VerificationPhrase string
			Verified           bool
		}
	}
	var before struct{ Viewer viewer }
	e.Post(alice.Token, q, nil).Decode(t, &before)
	if before.Viewer.ID != alice.ID.String() || before.Viewer.Email == nil || *before.Viewer.Email != alice.Email {
		t.Errorf("viewer = %+v, want id %s email %s", before.Viewer, alice.ID, alice.Email)
	}
	if before.Viewer.Profile != nil || before.Viewer.VoiceSample != nil {
		t.Errorf("profile, voiceSample = %+v, %+v before any exist, want null", before.Viewer.Profile, before.Viewer.VoiceSample)
	}

	createdAt := time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)
	e.Exec(`INSERT INTO profiles (user_id, display_name, avatar_url, created_at) VALUES ($1, 'Alice', 'https://img.test/a.png', $2)`, alice.ID, createdAt)
	e.Exec(`INSERT INTO profiles (user_id, display_name) VALUES ($1, 'Bob')`, bob.ID)
	e.verifiedVoice(alice)

	var after struct{ Viewer viewer }
	e.Post(alice.Token, q, nil).Decode(t, &after)
	p := after.Viewer.Profile
	if p == nil || p.UserID != alice.ID.String() || p.DisplayName == nil || *p.DisplayName != "Alice" ||
		p.AvatarURL == nil || *p.AvatarURL != "https://img.test/a.png" || p.CreatedAt != "2026-03-04T05:06:07.123456Z" {
		t.Errorf("profile = %+v, want Alice's", p)
	}
	v := after.Viewer.VoiceSample
	if v == nil || v.ElevenlabsVoiceID != "voice-"+alice.ID.String() || v.VerificationPhrase != "apple river candle" || !v.Verified {
		t.Errorf("voiceSample = %+v, want Alice's verified sample", v)
	}

	// Bob sees his own profile, not Alice's, and no voice sample.
	var bobs struct{ Viewer viewer }
	e.Post(bob.Token, q, nil).Decode(t, &bobs)
	if bobs.Viewer.Profile == nil || *bobs.Viewer.Profile.DisplayName != "Bob" || bobs.Viewer.VoiceSample != nil {
		t.Errorf("bob's viewer = %+v, want his profile and no voice sample", bobs.Viewer)
	}
}

func TestViewerGenerationsFilters(t *testing.T) {
	t.Parallel()
	e, l := newListing(t)
	alice, bob, s1, s2, base := l.alice, l.bob, l.a, l.b, l.base
	// Newest first: g4, g3, g2, g1.
	g1 := e.generationAt(alice, s1, generation.Completed, base)
	g2 := e.generationAt(alice, s2, generation.Pending, base.Add(time.Minute))
	g3 := e.generationAt(alice, s1, generation.Pending, base.Add(2*time.Minute))
	g4 := e.generationAt(alice, s2, generation.Completed, base.Add(3*time.Minute))
	e.generationAt(bob, s1, generation.Pending, base.Add(4*time.Minute))

	tests := []struct {
		name string
		args string
		want []uuid.UUID
	}{
		{"all", ``, []uuid.UUID{g4, g3, g2, g1}},
		{"status", `(status: COMPLETED)`, []uuid.UUID{g4, g1}},
		{"story", fmt.Sprintf(`(storyId: %q)`, s1), []uuid.UUID{g3, g1}},
		{"status and story", fmt.Sprintf(`(status: PENDING, storyId: %q)`, s2), []uuid.UUID{g2}},
		{"no match", `(status: IN_PROGRESS)`, nil},
		{"unknown story", fmt.Sprintf(`(storyId: %q)`, uuid.New()), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e.on(t)
			var got struct{ Viewer struct{ Generations idPage } }
			e.Post(alice.Token, `{ viewer { generations`+tt.args+` { nodes { id } pageInfo { hasNextPage endCursor } } } }`, nil).Decode(t, &got)
			if ids := got.Viewer.Generations.ids(); !slices.Equal(ids, strs(tt.want...)) {
				t.Errorf("generations = %v, want %v", ids, strs(tt.want...))
			}
			if got.Viewer.Generations.PageInfo.HasNextPage {
				t.Error("hasNextPage = true on the only page")
			}
		})
	}
}

func TestStoriesOrderAndSearch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cherry := e.story("Cherry", "cherry")
	apple1 := e.story("Apple", "apple-1")
	banana := e.story("Banana", "banana")
	apple2 := e.story("Apple", "apple-2")
	percent := e.story("A 100% True Story", "percent")
	under := e.story("Snake_Case Tales", "snake")
	back := e.story(`Back\slash`, "backslash")
	// Equal titles are ordered by id.
	if apple2.String() < apple1.String() {
		apple1, apple2 = apple2, apple1
	}

	tests := []struct {
		name   string
		search string
		want   []uuid.UUID
	}{
		{"no search", "", []uuid.UUID{percent, apple1, apple2, back, banana, cherry, under}},
		{"case-insensitive", "aPPl", []uuid.UUID{apple1, apple2}},
		{"substring", "an", []uuid.UUID{banana}},
		{"percent is literal", "%", []uuid.UUID{percent}},
		{"underscore is literal", "_", []uuid.UUID{under}},
		{"backslash is literal", `\`, []uuid.UUID{back}},
		{"literal wildcard inside text", "e_c", []uuid.UUID{under}},
		{"no match", "zebra", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e.on(t)
			var got struct{ Stories idPage }
			e.Post("", `query($s: String) { stories(search: $s) { nodes { id } pageInfo { hasNextPage endCursor } } }`,
				map[string]any{"s": tt.search}).Decode(t, &got)
			if ids := got.Stories.ids(); !slices.Equal(ids, strs(tt.want...)) {
				t.Errorf("stories(search: %q) = %v, want %v", tt.search, ids, strs(tt.want...))
			}
			if got.Stories.PageInfo.HasNextPage {
				t.Error("hasNextPage = true on the only page")
			}
		})
	}
}

func TestStoriesPageSize(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.Exec(`INSERT INTO stories (title, slug, content)
		SELECT format('Story %s', lpad(i::text, 3, '0')), format('story-%s', i), 'Text.' FROM generate_series(1, 105) i`)
	all := e.IDs(`SELECT id FROM stories ORDER BY title, id`)

	tests := []struct {
		name    string
		args    string
		want    int
		hasNext bool
	}{
		{"default is 20", ``, 20, true},
		{"explicit null is the default", `(first: null)`, 20, true},
		{"zero", `(first: 0)`, 0, true},
		{"one", `(first: 1)`, 1, true},
		{"one hundred", `(first: 100)`, 100, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e.on(t)
			var got struct{ Stories idPage }
			e.Post("", `{ stories`+tt.args+` { nodes { id } edges { cursor } pageInfo { hasNextPage endCursor } } }`, nil).Decode(t, &got)
			if ids := got.Stories.ids(); !slices.Equal(ids, all[:tt.want]) {
				t.Errorf("stories%s = %d ids %v, want the first %d", tt.args, len(ids), ids, tt.want)
			}
			if len(got.Stories.Edges) != tt.want {
				t.Errorf("%d edges, want %d", len(got.Stories.Edges), tt.want)
			}
			if got.Stories.PageInfo.HasNextPage != tt.hasNext {
				t.Errorf("hasNextPage = %v, want %v", got.Stories.PageInfo.HasNextPage, tt.hasNext)
			}
			if tt.want == 0 && got.Stories.PageInfo.EndCursor != nil {
				t.Errorf("endCursor = %q on an empty page, want null", *got.Stories.PageInfo.EndCursor)
			}
			if tt.want > 0 && (got.Stories.PageInfo.EndCursor == nil || *got.Stories.PageInfo.EndCursor != got.Stories.Edges[tt.want-1].Cursor) {
				t.Errorf("endCursor = %v, want the last edge's cursor", got.Stories.PageInfo.EndCursor)
			}
		})
	}

	for _, first := range []int{101, -1, 1000} {
		t.Run(fmt.Sprintf("first %d", first), func(t *testing.T) {
			t.Parallel()
			e := e.on(t)
			r := e.Post("", `query($n: Int) { stories(first: $n) { nodes { id } } }`, map[string]any{"n": first})
			r.WantCode(t, graph.CodeBadUserInput)
			r.WantNullData(t)
		})
	}
}

func TestStoryLookup(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.story("The Fox", "the-fox")
	e.Exec(`UPDATE stories SET version = 4 WHERE id = $1`, id)
	var updatedAt time.Time
	e.Scan(`SELECT updated_at FROM stories WHERE id = $1`, []any{id}, &updatedAt)

	type story struct {
		ID, Title, Slug, Content string
		Version                  int
		UpdatedAt                string
	}
	want := story{ID: id.String(), Title: "The Fox", Slug: "the-fox", Content: "Once upon a time.", Version: 4,
		UpdatedAt: updatedAt.UTC().Format("2006-01-02T15:04:05.000000Z07:00")}
	const fields = `id title slug content version updatedAt`

	tests := []struct {
		name     string
		args     string
		want     *story
		wantCode string
	}{
		{name: "by id", args: fmt.Sprintf(`id: %q`, id), want: &want},
		{name: "by slug", args: `slug: "the-fox"`, want: &want},
		{name: "unknown id", args: fmt.Sprintf(`id: %q`, uuid.New())},
		{name: "unknown slug", args: `slug: "no-such-story"`},
		{name: "both", args: fmt.Sprintf(`id: %q, slug: "the-fox"`, id), wantCode: graph.CodeBadUserInput},
		{name: "neither", args: ``, wantCode: graph.CodeBadUserInput},
		{name: "both null", args: `id: null, slug: null`, wantCode: graph.CodeBadUserInput},
		{name: "malformed id", args: `id: "not-a-uuid"`, wantCode: graph.CodeBadUserInput},
		{name: "uuid without hyphens", args: fmt.Sprintf(`id: %q`, strings.ReplaceAll(id.String(), "-", "")), wantCode: graph.CodeBadUserInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e.on(t)
			args := ""
			if tt.args != "" {
				args = "(" + tt.args + ")"
			}
			r := e.Post("", `{ story`+args+` { `+fields+` } }`, nil)
			if tt.wantCode != "" {
				r.WantCode(t, tt.wantCode)
				r.WantNullData(t)
				return
			}
			var got struct{ Story *story }
			r.Decode(t, &got)
			switch {
			case tt.want == nil && got.Story != nil:
				t.Errorf("story = %+v, want null", got.Story)
			case tt.want != nil && (got.Story == nil || *got.Story != *tt.want):
				t.Errorf("story = %+v, want %+v", got.Story, tt.want)
			}
		})
	}
}

// generationView is a generation with its nested fields.
type generationView struct {
	ID        string
	Status    string
	Progress  int
	ResultURL *string
	Metadata  json.RawMessage
	CreatedAt string
	UpdatedAt string
	Story     struct{ ID, Title string }
	User      struct {
		ID    string
		Email *string
	}
	Logs struct {
		Nodes []struct {
			ID, Event, OccurredAt string
		}
	}
}

const generationFields = `id status progress resultUrl metadata createdAt updatedAt
	story { id title } user { id email } logs { nodes { id event occurredAt } }`

func TestGenerationQuery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.NewUser("alice@example.com", false)
	bob := e.NewUser("bob@example.com", false)
	root := e.NewUser("root@example.com", true)
	story := e.story("The Fox", "the-fox")
	created := time.Date(2026, 2, 3, 4, 5, 6, 789012000, time.UTC)
	gen := e.generationAt(alice, story, generation.InProgress, created)
	e.Exec(`UPDATE story_generations SET progress = 40, metadata = '{"chunks": 5}' WHERE id = $1`, gen)
	// Logs are inserted out of order; they come back oldest first.
	t0 := created.Add(time.Second)
	l3 := e.logAt(gen, "chunk 2 done", t0.Add(2*time.Second))
	l1 := e.logAt(gen, "started", t0)
	l2 := e.logAt(gen, "chunk 1 done", t0.Add(time.Second))

	check := func(t *testing.T, g *generationView) {
		t.Helper()
		if g == nil {
			t.Fatal("generation = null, want it")
		}
		if g.ID != gen.String() || g.Status != "IN_PROGRESS" || g.Progress != 40 || g.ResultURL != nil ||
			!jsonEqual(g.Metadata, `{"chunks": 5}`) || g.CreatedAt != "2026-02-03T04:05:06.789012Z" {
			t.Errorf("generation = %+v", g)
		}
		if g.Story.ID != story.String() || g.Story.Title != "The Fox" {
			t.Errorf("story = %+v, want The Fox", g.Story)
		}
		if g.User.ID != alice.ID.String() || g.User.Email == nil || *g.User.Email != alice.Email {
			t.Errorf("user = %+v, want alice with her email", g.User)
		}
		var logs []string
		for _, l := range g.Logs.Nodes {
			logs = append(logs, l.ID+" "+l.Event)
		}
		want := []string{l1.String() + " started", l2.String() + " chunk 1 done", l3.String() + " chunk 2 done"}
		if !slices.Equal(logs, want) {
			t.Errorf("logs = %v, want %v", logs, want)
		}
		if len(g.Logs.Nodes) > 0 && g.Logs.Nodes[0].OccurredAt != "2026-02-03T04:05:07.789012Z" {
			t.Errorf("first log occurredAt = %s", g.Logs.Nodes[0].OccurredAt)
		}
	}

	const q = `query($id: ID!) { generation(id: $id) { ` + generationFields + ` } }`
	tests := []struct {
		name    string
		token   string
		id      uuid.UUID
		visible bool
	}{
		{"owner", alice.Token, gen, true},
		{"admin sees any", root.Token, gen, true},
		{"other user gets null", bob.Token, gen, false},
		{"anonymous gets null", "", gen, false},
		{"unknown", alice.Token, uuid.New(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e.on(t)
			var got struct{ Generation *generationView }
			e.Post(tt.token, q, map[string]any{"id": tt.id}).Decode(t, &got)
			switch {
			case tt.visible:
				check(t, got.Generation)
			case got.Generation != nil:
				t.Errorf("generation = %+v, want null", got.Generation)
			}
		})
	}
	t.Run("malformed id", func(t *testing.T) {
		t.Parallel()
		e := e.on(t)
		r := e.Post(alice.Token, q, map[string]any{"id": "42"})
		r.WantCode(t, graph.CodeBadUserInput)
		r.WantNullData(t)
	})
}

func TestMyGenerations(t *testing.T) {
	t.Parallel()
	e, l := newListing(t)
	alice, bob, s1, s2, base := l.alice, l.bob, l.a, l.b, l.base
	root := e.NewUser("root@example.com", true)
	a1 := e.generationAt(alice, s1, generation.Completed, base)
	a2 := e.generationAt(alice, s1, generation.Pending, base.Add(time.Minute))
	a3 := e.generationAt(alice, s2, generation.Pending, base.Add(2*time.Minute))
	b1 := e.generationAt(bob, s1, generation.Pending, base.Add(3*time.Minute))
	r1 := e.generationAt(root, s1, generation.Failed, base.Add(4*time.Minute))

	tests := []struct {
		name  string
		token string
		want  map[string][]uuid.UUID // by story slug
	}{
		{"alice", alice.Token, map[string][]uuid.UUID{"a": {a2, a1}, "b": {a3}}},
		{"bob", bob.Token, map[string][]uuid.UUID{"a": {b1}, "b": nil}},
		{"admin sees only their own", root.Token, map[string][]uuid.UUID{"a": {r1}, "b": nil}},
		{"anonymous", "", map[string][]uuid.UUID{"a": nil, "b": nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e.on(t)
			var got struct {
				Stories struct {
					Nodes []struct {
						Slug          string
						MyGenerations idPage
					}
				}
			}
			e.Post(tt.token, `{ stories { nodes { slug myGenerations { nodes { id } pageInfo { hasNextPage endCursor } } } } }`, nil).Decode(t, &got)
			if len(got.Stories.Nodes) != 2 {
				t.Fatalf("got %d stories, want 2", len(got.Stories.Nodes))
			}
			for _, s := range got.Stories.Nodes {
				if ids := s.MyGenerations.ids(); !slices.Equal(ids, strs(tt.want[s.Slug]...)) {
					t.Errorf("story %s myGenerations = %v, want %v", s.Slug, ids, strs(tt.want[s.Slug]...))
				}
			}
		})
	}
}

func TestResultURL(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.NewUser("alice@example.com", false)
	story := e.story("A", "a")
	tests := []struct {
		status generation.Status
		key    string
		signed bool
	}{
		{status: generation.Pending},
		{status: generation.InProgress},
		{status: generation.Failed},
		{status: generation.Completed},
		{status: generation.Completed, key: "audio/abc.mp3", signed: true},
	}
	for _, tt := range tests {
		id := e.generation(alice, story, tt.status)
		if tt.key != "" {
			e.Exec(`UPDATE story_generations SET result_url = $2 WHERE id = $1`, id, tt.key)
		}
		t.Run(fmt.Sprintf("%s %q", tt.status, tt.key), func(t *testing.T) {
			t.Parallel()
			e := e.on(t)
			var got struct{ Generation struct{ ResultURL *string } }
			e.Post(alice.Token, `query($id: ID!) { generation(id: $id) { resultUrl } }`, map[string]any{"id": id}).Decode(t, &got)
			if (got.Generation.ResultURL != nil) != tt.signed {
				t.Fatalf("resultUrl = %v, want a signed link: %v", deref(got.Generation.ResultURL), tt.signed)
			}
			if tt.signed {
				checkSignedLink(t, e, *got.Generation.ResultURL, tt.key)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// checkSignedLink fails the test unless link is the server's signed,
// unexpired link to the stored key.
func checkSignedLink(t testing.TB, e *env, link, key string) {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if !strings.HasPrefix(link, e.URL+"/audio/") {
		t.Errorf("link %s is not under %s/audio/", link, e.URL)
	}
	if err := e.App.Signer.Check(key, q.Get("exp"), q.Get("sig"), time.Now()); err != nil {
		t.Errorf("link %s does not sign %s: %v", link, key, err)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<null>"
	}
	return *s
}

// jsonEqual reports whether raw holds the same JSON value as want.
func jsonEqual(raw json.RawMessage, want string) bool {
	var a, b any
	if json.Unmarshal(raw, &a) != nil || json.Unmarshal([]byte(want), &b) != nil {
		return false
	}
	return reflect.DeepEqual(a, b)
}
