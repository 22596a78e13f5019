package api_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/narrate/narrate/generation"
	"github.com/narrate/narrate/graph"
)

// pageAt decodes the connection found under path in a response's data.
func pageAt(t testing.TB, r response, path []string) idPage {
	t.Helper()
	var v any
	r.Decode(t, &v)
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("no %v in %s", path, r.Data)
		}
		v = m[p]
	}
	b, _ := json.Marshal(v)
	var page idPage
	if err := json.Unmarshal(b, &page); err != nil {
		t.Fatalf("decode page %s: %v", b, err)
	}
	return page
}

// connectionSelection is what walk asks of a connection.
const connectionSelection = `nodes { id } edges { cursor node { id } } pageInfo { hasNextPage endCursor }`

// walk pages through a connection size rows at a time, following
// endCursor, checks each page's shape and returns every id in order. query
// must take $first: Int and $after: String.
func walk(t testing.TB, e *env, token, query string, vars map[string]any, path []string, size int) []string {
	t.Helper()
	var all []string
	var after any
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("more than 100 pages: the walk does not end")
		}
		v := map[string]any{"first": size, "after": after}
		maps.Copy(v, vars)
		page := pageAt(t, e.Post(token, query, v), path)
		ids := page.ids()
		if len(ids) > size {
			t.Fatalf("page of %d rows, asked for %d", len(ids), size)
		}
		if len(page.Edges) != len(ids) {
			t.Fatalf("%d edges, %d nodes", len(page.Edges), len(ids))
		}
		for i, edge := range page.Edges {
			if edge.Node.ID != ids[i] {
				t.Fatalf("edge %d is %s, node %d is %s", i, edge.Node.ID, i, ids[i])
			}
		}
		switch {
		case len(ids) == 0 && page.PageInfo.EndCursor != nil:
			t.Fatalf("endCursor %q on an empty page, want null", *page.PageInfo.EndCursor)
		case len(ids) > 0 && (page.PageInfo.EndCursor == nil || *page.PageInfo.EndCursor != page.Edges[len(ids)-1].Cursor):
			t.Fatalf("endCursor = %v, want the last edge's cursor %q", page.PageInfo.EndCursor, page.Edges[len(ids)-1].Cursor)
		case len(ids) < size && page.PageInfo.HasNextPage:
			t.Fatalf("hasNextPage on a short page of %d rows", len(ids))
		case len(ids) == 0 && pages > 0:
			t.Fatal("an empty page after a page that said hasNextPage")
		}
		all = append(all, ids...)
		if !page.PageInfo.HasNextPage {
			return all
		}
		after = *page.PageInfo.EndCursor
	}
}

// oneOfEach is one node in each connection: story "a", Alice's
// generation of it and its log, with the end cursor of each connection's
// first page.
type oneOfEach struct {
	alice                             user
	story, gen                        uuid.UUID
	storyCursor, genCursor, logCursor string
}

func (e *env) oneOfEach() oneOfEach {
	e.t.Helper()
	o := oneOfEach{alice: e.NewUser("alice@example.com", false), story: e.story("A", "a")}
	o.gen = e.generation(o.alice, o.story, generation.Pending)
	e.logAt(o.gen, "started", time.Now())
	var got struct {
		Stories    idPage
		Viewer     struct{ Generations idPage }
		Generation struct{ Logs idPage }
	}
	e.Post(o.alice.Token, `query($g: ID!) {
		stories { `+connectionSelection+` }
		viewer { generations { `+connectionSelection+` } }
		generation(id: $g) { logs { `+connectionSelection+` } } }`, map[string]any{"g": o.gen}).Decode(e.t, &got)
	for _, p := range []idPage{got.Stories, got.Viewer.Generations, got.Generation.Logs} {
		if p.PageInfo.EndCursor == nil {
			e.t.Fatalf("a first page without endCursor: %+v", got)
		}
	}
	o.storyCursor, o.genCursor, o.logCursor = *got.Stories.PageInfo.EndCursor, *got.Viewer.Generations.PageInfo.EndCursor, *got.Generation.Logs.PageInfo.EndCursor
	return o
}

// connectionCase is one connection to page through.
type connectionCase struct {
	name  string
	token string
	query string
	vars  map[string]any
	path  []string
	want  []string
}

func TestPaginationWalk(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.NewUser("alice@example.com", false)
	bob := e.NewUser("bob@example.com", false)

	// Stories: several share a title, so the id breaks the ties.
	for i, title := range []string{"Same", "Zulu", "Same", "Alpha", "Same", "Mike", "Same", "Bravo"} {
		e.story(title, fmt.Sprintf("s-%d", i))
	}
	story := e.story("Same", "target")

	// Generations: four share one created_at to the microsecond.
	same := time.Date(2026, 5, 1, 12, 0, 0, 123456000, time.UTC)
	var gen uuid.UUID
	for i := range 9 {
		at := same
		if i >= 4 {
			at = same.Add(time.Duration(i-6) * time.Hour)
		}
		st := generation.Pending
		if i%2 == 0 {
			st = generation.Completed
		}
		gen = e.generationAt(alice, story, st, at)
		e.generationAt(bob, story, st, at)
	}
	e.generationAt(alice, e.story("Other", "other"), generation.Pending, same)

	// Logs: five share one occurred_at.
	for i := range 8 {
		at := same
		if i >= 5 {
			at = same.Add(time.Duration(i-6) * time.Minute)
		}
		e.logAt(gen, fmt.Sprintf("event %d", i), at)
	}

	cases := []connectionCase{
		{
			name:  "stories",
			query: `query($first: Int, $after: String) { stories(first: $first, after: $after) { ` + connectionSelection + ` } }`,
			path:  []string{"stories"},
			want:  e.IDs(`SELECT id FROM stories ORDER BY title, id`),
		},
		{
			name:  "stories with search",
			query: `query($first: Int, $after: String) { stories(first: $first, after: $after, search: "sAm") { ` + connectionSelection + ` } }`,
			path:  []string{"stories"},
			want:  e.IDs(`SELECT id FROM stories WHERE title = 'Same' ORDER BY title, id`),
		},
		{
			name:  "viewer.generations",
			token: alice.Token,
			query: `query($first: Int, $after: String) { viewer { generations(first: $first, after: $after) { ` + connectionSelection + ` } } }`,
			path:  []string{"viewer", "generations"},
			want:  e.IDs(`SELECT id FROM story_generations WHERE user_id = $1 ORDER BY created_at DESC, id`, alice.ID),
		},
		{
			name:  "viewer.generations with status",
			token: alice.Token,
			query: `query($first: Int, $after: String) { viewer { generations(first: $first, after: $after, status: COMPLETED) { ` + connectionSelection + ` } } }`,
			path:  []string{"viewer", "generations"},
			want:  e.IDs(`SELECT id FROM story_generations WHERE user_id = $1 AND status = 'completed' ORDER BY created_at DESC, id`, alice.ID),
		},
		{
			name:  "story.myGenerations",
			token: bob.Token,
			query: `query($first: Int, $after: String, $s: ID!) { story(id: $s) { myGenerations(first: $first, after: $after) { ` + connectionSelection + ` } } }`,
			vars:  map[string]any{"s": story},
			path:  []string{"story", "myGenerations"},
			want:  e.IDs(`SELECT id FROM story_generations WHERE user_id = $1 AND story_id = $2 ORDER BY created_at DESC, id`, bob.ID, story),
		},
		{
			name:  "generation.logs",
			token: alice.Token,
			query: `query($first: Int, $after: String, $g: ID!) { generation(id: $g) { logs(first: $first, after: $after) { ` + connectionSelection + ` } } }`,
			vars:  map[string]any{"g": gen},
			path:  []string{"generation", "logs"},
			want:  e.IDs(`SELECT id FROM generation_logs WHERE generation_id = $1 ORDER BY occurred_at, id`, gen),
		},
	}
	for _, c := range cases {
		if len(c.want) < 4 {
			t.Fatalf("%s: fixture has only %d rows", c.name, len(c.want))
		}
		for _, size := range []int{1, 2, 3, len(c.want) - 1, len(c.want), 100} {
			t.Run(fmt.Sprintf("%s by %d", c.name, size), func(t *testing.T) {
				t.Parallel()
				e := e.on(t)
				got := walk(t, e, c.token, c.query, c.vars, c.path, size)
				if !slices.Equal(got, c.want) {
					t.Errorf("walked %v\nwant   %v", got, c.want)
				}
			})
		}
	}
}

func TestPaginationEmptyPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.oneOfEach()
	alice, gen, lastStory, lastGen, lastLog := o.alice, o.gen, o.storyCursor, o.genCursor, o.logCursor
	bob := e.NewUser("bob@example.com", false)
	quiet := e.generation(bob, o.story, generation.Pending)

	tests := []struct {
		name  string
		token string
		query string
		path  []string
	}{
		{"stories after the last", "", fmt.Sprintf(`{ stories(after: %q) { %s } }`, lastStory, connectionSelection), []string{"stories"}},
		{"stories without match", "", `{ stories(search: "zzz") { ` + connectionSelection + ` } }`, []string{"stories"}},
		{"generations after the last", alice.Token, fmt.Sprintf(`{ viewer { generations(after: %q) { %s } } }`, lastGen, connectionSelection), []string{"viewer", "generations"}},
		{"myGenerations after the last", alice.Token, fmt.Sprintf(`{ story(slug: "a") { myGenerations(after: %q) { %s } } }`, lastGen, connectionSelection), []string{"story", "myGenerations"}},
		{"logs after the last", alice.Token, fmt.Sprintf(`{ generation(id: %q) { logs(after: %q) { %s } } }`, gen, lastLog, connectionSelection), []string{"generation", "logs"}},
		{"no generations", e.NewUser("carol@example.com", false).Token, `{ viewer { generations { ` + connectionSelection + ` } } }`, []string{"viewer", "generations"}},
		{"no logs", bob.Token, fmt.Sprintf(`{ generation(id: %q) { logs { %s } } }`, quiet, connectionSelection), []string{"generation", "logs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e.on(t)
			page := pageAt(t, e.Post(tt.token, tt.query, nil), tt.path)
			if len(page.Nodes) != 0 || len(page.Edges) != 0 || page.PageInfo.HasNextPage || page.PageInfo.EndCursor != nil {
				t.Errorf("page = %+v, want empty with hasNextPage false and endCursor null", page)
			}
		})
	}

	t.Run("first 0 of a non-empty nested connection", func(t *testing.T) {
		t.Parallel()
		e := e.on(t)
		page := pageAt(t, e.Post(alice.Token, `{ viewer { generations(first: 0) { `+connectionSelection+` } } }`, nil), []string{"viewer", "generations"})
		if len(page.Nodes) != 0 || !page.PageInfo.HasNextPage || page.PageInfo.EndCursor != nil {
			t.Errorf("page = %+v, want no rows, hasNextPage and no endCursor", page)
		}
	})
}

func TestPaginationBadCursors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.oneOfEach()
	alice, gen, storyCursor, genCursor, logCursor := o.alice, o.gen, o.storyCursor, o.genCursor, o.logCursor

	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	malformed := []struct{ name, cursor string }{
		{"not base64", "!!!"},
		{"empty", ""},
		{"no kind", b64(`{"Title":"A"}`)},
		{"bad json", b64("story:{")},
		{"bad time", b64(`generation:{"CreatedAt":"yesterday","ID":"` + uuid.NewString() + `"}`)},
	}
	connections := []struct {
		name    string
		query   string
		foreign []string
	}{
		{"stories", `query($after: String) { stories(after: $after) { nodes { id } } }`, []string{genCursor, logCursor}},
		{"viewer.generations", `query($after: String) { viewer { generations(after: $after) { nodes { id } } } }`, []string{storyCursor, logCursor}},
		{"story.myGenerations", `query($after: String) { story(slug: "a") { myGenerations(after: $after) { nodes { id } } } }`, []string{storyCursor, logCursor}},
		{"viewer.generations.logs", `query($after: String) { viewer { generations { nodes { logs(after: $after) { nodes { id } } } } } }`, []string{storyCursor, genCursor}},
		{"generation.logs", fmt.Sprintf(`query($after: String) { generation(id: %q) { logs(after: $after) { nodes { id } } } }`, gen), []string{storyCursor, genCursor}},
	}
	for _, c := range connections {
		for _, m := range malformed {
			t.Run(c.name+" "+m.name, func(t *testing.T) {
				t.Parallel()
				e := e.on(t)
				r := e.Post(alice.Token, c.query, map[string]any{"after": m.cursor})
				r.WantCode(t, graph.CodeBadUserInput)
			})
		}
		for i, cursor := range c.foreign {
			t.Run(fmt.Sprintf("%s foreign cursor %d", c.name, i), func(t *testing.T) {
				t.Parallel()
				e := e.on(t)
				r := e.Post(alice.Token, c.query, map[string]any{"after": cursor})
				r.WantCode(t, graph.CodeBadUserInput)
			})
		}
	}
}
