package api_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/narrate/narrate/generation"
	"github.com/narrate/narrate/graph"
)

type profileRow struct {
	DisplayName, AvatarURL *string
}

func (e *env) profileRow(u user) (profileRow, bool) {
	e.t.Helper()
	if e.Count(`SELECT count(*) FROM profiles WHERE user_id = $1`, u.ID) == 0 {
		return profileRow{}, false
	}
	var p profileRow
	e.Scan(`SELECT display_name, avatar_url FROM profiles WHERE user_id = $1`, []any{u.ID}, &p.DisplayName, &p.AvatarURL)
	return p, true
}

func TestUpdateProfile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.NewUser("alice@example.com", false)

	const q = `mutation($input: UpdateProfileInput!) { updateProfile(input: $input) { userId displayName avatarUrl createdAt } }`
	type profile struct {
		UserID      string
		DisplayName *string
		AvatarURL   *string
		CreatedAt   string
	}
	// The steps run in order: each starts from the state the previous one left.
	steps := []struct {
		name  string
		input map[string]any
		want  profileRow
	}{
		{"first call creates", map[string]any{"displayName": "Alice"}, profileRow{DisplayName: ptr("Alice")}},
		{"omitted display name is unchanged", map[string]any{"avatarUrl": "https://img.test/a.png"},
			profileRow{DisplayName: ptr("Alice"), AvatarURL: ptr("https://img.test/a.png")}},
		{"empty input changes nothing", map[string]any{},
			profileRow{DisplayName: ptr("Alice"), AvatarURL: ptr("https://img.test/a.png")}},
		{"explicit null clears", map[string]any{"displayName": nil},
			profileRow{AvatarURL: ptr("https://img.test/a.png")}},
		{"both set", map[string]any{"displayName": "Al", "avatarUrl": "http://img.test/b.png"},
			profileRow{DisplayName: ptr("Al"), AvatarURL: ptr("http://img.test/b.png")}},
		{"both cleared", map[string]any{"displayName": nil, "avatarUrl": nil}, profileRow{}},
		{"100 characters", map[string]any{"displayName": strings.Repeat("é", 100)}, profileRow{DisplayName: ptr(strings.Repeat("é", 100))}},
	}
	for _, step := range steps {
		var got struct{ UpdateProfile profile }
		e.Post(alice.Token, q, map[string]any{"input": step.input}).Decode(t, &got)
		p := got.UpdateProfile
		if p.UserID != alice.ID.String() || deref(p.DisplayName) != deref(step.want.DisplayName) || deref(p.AvatarURL) != deref(step.want.AvatarURL) {
			t.Errorf("%s: updateProfile = %+v, want %s %s", step.name, p, deref(step.want.DisplayName), deref(step.want.AvatarURL))
		}
		row, ok := e.profileRow(alice)
		if !ok || deref(row.DisplayName) != deref(step.want.DisplayName) || deref(row.AvatarURL) != deref(step.want.AvatarURL) {
			t.Errorf("%s: stored profile = %s %s (exists %v), want %s %s", step.name,
				deref(row.DisplayName), deref(row.AvatarURL), ok, deref(step.want.DisplayName), deref(step.want.AvatarURL))
		}
	}
	e.WantCount(1, `SELECT count(*) FROM profiles`)
}

func TestUpdateProfileRejects(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.NewUser("alice@example.com", false)
	e.Exec(`INSERT INTO profiles (user_id, display_name, avatar_url) VALUES ($1, 'Alice', 'https://img.test/a.png')`, alice.ID)

	tests := []struct {
		name  string
		token string
		input map[string]any
		code  string
	}{
		{"blank name", alice.Token, map[string]any{"displayName": "   "}, graph.CodeBadUserInput},
		{"empty name", alice.Token, map[string]any{"displayName": ""}, graph.CodeBadUserInput},
		{"name too long", alice.Token, map[string]any{"displayName": strings.Repeat("a", 101)}, graph.CodeBadUserInput},
		{"relative URL", alice.Token, map[string]any{"avatarUrl": "/a.png"}, graph.CodeBadUserInput},
		{"not a URL", alice.Token, map[string]any{"avatarUrl": "not a url"}, graph.CodeBadUserInput},
		{"javascript URL", alice.Token, map[string]any{"avatarUrl": "javascript:alert(1)"}, graph.CodeBadUserInput},
		{"ftp URL", alice.Token, map[string]any{"avatarUrl": "ftp://img.test/a.png"}, graph.CodeBadUserInput},
		{"URL without host", alice.Token, map[string]any{"avatarUrl": "https://"}, graph.CodeBadUserInput},
		{"URL too long", alice.Token, map[string]any{"avatarUrl": "https://img.test/" + strings.Repeat("a", 2048)}, graph.CodeBadUserInput},
		{"valid name with bad URL", alice.Token, map[string]any{"displayName": "Bob", "avatarUrl": "nope"}, graph.CodeBadUserInput},
		{"anonymous", "", map[string]any{"displayName": "Mallory"}, graph.CodeUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e.on(t)
			r := e.Post(tt.token, `mutation($input: UpdateProfileInput!) { updateProfile(input: $input) { userId } }`,
				map[string]any{"input": tt.input})
			r.WantCode(t, tt.code)
			r.WantNullData(t)
		})
	}
	t.Cleanup(func() {
		row, ok := e.profileRow(alice)
		if !ok || deref(row.DisplayName) != "Alice" || deref(row.AvatarURL) != "https://img.test/a.png" {
			t.Errorf("profile changed by refused updates: %s %s", deref(row.DisplayName), deref(row.AvatarURL))
		}
		e.WantCount(1, `SELECT count(*) FROM profiles`)
	})
}

func TestStartGeneration(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.narrator("alice@example.com")
	story := e.story("The Fox", "the-fox")
	e.Exec(`UPDATE stories SET version = 3 WHERE id = $1`, story)

	var got struct {
		StartGeneration struct {
			ID        string
			Status    string
			Progress  int
			ResultURL *string
			Metadata  json.RawMessage
			Story     struct{ ID string }
			User      struct{ ID string }
			Logs      idPage
		}
	}
	r := e.Post(alice.Token, `mutation($s: ID!) { startGeneration(storyId: $s) {
		id status progress resultUrl metadata story { id } user { id } logs { nodes { id } } } }`,
		map[string]any{"s": story})
	r.Decode(t, &got)
	g := got.StartGeneration
	if g.Status != "PENDING" || g.Progress != 0 || g.ResultURL != nil || g.Story.ID != story.String() ||
		g.User.ID != alice.ID.String() || len(g.Logs.Nodes) != 0 {
		t.Errorf("startGeneration = %+v", g)
	}
	if !jsonEqual(g.Metadata, `{"requested_story_version": 3}`) {
		t.Errorf("metadata = %s, want the story version 3", g.Metadata)
	}
	var owner, storyID uuid.UUID
	var status string
	var version int
	e.Scan(`SELECT user_id, story_id, status::text, (metadata->>'requested_story_version')::int FROM story_generations WHERE id = $1`,
		[]any{g.ID}, &owner, &storyID, &status, &version)
	if owner != alice.ID || storyID != story || status != "pending" || version != 3 {
		t.Errorf("stored generation = %s %s %s %d", owner, storyID, status, version)
	}
}

func TestStartGenerationRejects(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	verified := e.narrator("verified@example.com")
	unverified := e.NewUser("unverified@example.com", false)
	e.Exec(`INSERT INTO voice_samples (user_id, elevenlabs_voice_id, verification_phrase) VALUES ($1, 'v', 'a b c')`, unverified.ID)
	noSample := e.NewUser("nosample@example.com", false)
	story := e.story("The Fox", "the-fox")

	tests := []struct {
		name  string
		token string
		story any
		code  string
	}{
		{"no voice sample", noSample.Token, story, graph.CodeVoiceNotVerified},
		{"unverified voice sample", unverified.Token, story, graph.CodeVoiceNotVerified},
		{"unknown story", verified.Token, uuid.New(), graph.CodeNotFound},
		{"malformed story id", verified.Token, "the-fox", graph.CodeBadUserInput},
		{"anonymous", "", story, graph.CodeUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e.on(t)
			r := e.Post(tt.token, `mutation($s: ID!) { startGeneration(storyId: $s) { id } }`, map[string]any{"s": tt.story})
			r.WantCode(t, tt.code)
			r.WantNullData(t)
		})
	}
	t.Cleanup(func() {
		e.WantCount(0, `SELECT count(*) FROM story_generations`)
	})
}

func TestCancelGeneration(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.NewUser("alice@example.com", false)
	bob := e.NewUser("bob@example.com", false)
	story := e.story("The Fox", "the-fox")

	const q = `mutation($id: ID!) { cancelGeneration(id: $id) { id status progress logs { nodes { event } } } }`
	for _, status := range []generation.Status{generation.Pending, generation.InProgress} {
		t.Run("cancels "+string(status), func(t *testing.T) {
			t.Parallel()
			e := e.on(t)
			id := e.generation(alice, story, status)
			e.Exec(`UPDATE story_generations SET progress = 30 WHERE id = $1`, id)
			e.logAt(id, "started", time.Now().Add(-time.Minute))
			var got struct {
				CancelGeneration struct {
					ID, Status string
					Progress   int
					Logs       struct{ Nodes []struct{ Event string } }
				}
			}
			e.Post(alice.Token, q, map[string]any{"id": id}).Decode(t, &got)
			c := got.CancelGeneration
			if c.ID != id.String() || c.Status != "FAILED" || c.Progress != 30 {
				t.Errorf("cancelGeneration = %+v, want FAILED", c)
			}
			if n := len(c.Logs.Nodes); n != 2 || c.Logs.Nodes[0].Event != "started" || c.Logs.Nodes[1].Event != "canceled" {
				t.Errorf("logs = %+v, want started then canceled", c.Logs.Nodes)
			}
			if s := e.genState(id); s.Status != "failed" || s.Logs != 2 {
				t.Errorf("stored = %+v, want failed with 2 logs", s)
			}
			e.WantCount(1, `SELECT count(*) FROM generation_logs WHERE generation_id = $1 AND event = 'canceled'`, id)
		})
	}

	tests := []struct {
		name   string
		token  string
		owner  user
		status generation.Status
		code   string
	}{
		{"completed", alice.Token, alice, generation.Completed, graph.CodeConflict},
		{"already failed", alice.Token, alice, generation.Failed, graph.CodeConflict},
		{"other user's pending", bob.Token, alice, generation.Pending, graph.CodeNotFound},
		{"other user's completed", bob.Token, alice, generation.Completed, graph.CodeNotFound},
		{"anonymous", "", alice, generation.Pending, graph.CodeUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e.on(t)
			id := e.generation(tt.owner, story, tt.status)
			before := e.genState(id)
			r := e.Post(tt.token, q, map[string]any{"id": id})
			r.WantCode(t, tt.code)
			r.WantNullData(t)
			if after := e.genState(id); after != before {
				t.Errorf("generation changed: %+v, was %+v", after, before)
			}
		})
	}
	t.Run("unknown", func(t *testing.T) {
		t.Parallel()
		e := e.on(t)
		r := e.Post(alice.Token, q, map[string]any{"id": uuid.New()})
		r.WantCode(t, graph.CodeNotFound)
	})
	t.Run("cancel twice", func(t *testing.T) {
		t.Parallel()
		e := e.on(t)
		id := e.generation(alice, story, generation.Pending)
		e.Post(alice.Token, q, map[string]any{"id": id}).Decode(t, &struct{}{})
		e.Post(alice.Token, q, map[string]any{"id": id}).WantCode(t, graph.CodeConflict)
		if s := e.genState(id); s.Logs != 1 {
			t.Errorf("%d logs after two cancels, want 1", s.Logs)
		}
	})
}

// storyRow is a story as stored.
type storyRow struct {
	Title, Slug, Content string
	Version              int
}

func (e *env) storyRow(id any) (storyRow, bool) {
	e.t.Helper()
	if e.Count(`SELECT count(*) FROM stories WHERE id = $1`, id) == 0 {
		return storyRow{}, false
	}
	var s storyRow
	e.Scan(`SELECT title, slug, content, version FROM stories WHERE id = $1`, []any{id}, &s.Title, &s.Slug, &s.Content, &s.Version)
	return s, true
}

type storyResult struct {
	ID, Title, Slug, Content string
	Version                  int
}

func TestStoryAdminLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	root := e.NewUser("root@example.com", true)
	alice := e.NewUser("alice@example.com", false)

	var created struct{ CreateStory storyResult }
	e.Post(root.Token, `mutation { createStory(input: {title: "The Fox", slug: "the-fox", content: "A quick fox."}) { id title slug content version } }`, nil).
		Decode(t, &created)
	s := created.CreateStory
	if s.Title != "The Fox" || s.Slug != "the-fox" || s.Content != "A quick fox." || s.Version != 1 {
		t.Fatalf("createStory = %+v, want version 1", s)
	}
	if row, ok := e.storyRow(s.ID); !ok || row != (storyRow{"The Fox", "the-fox", "A quick fox.", 1}) {
		t.Fatalf("stored = %+v (exists %v)", row, ok)
	}

	const update = `mutation($id: ID!, $v: Int!, $input: UpdateStoryInput!) {
		updateStory(id: $id, expectedVersion: $v, input: $input) { id title slug content version } }`
	steps := []struct {
		name    string
		version int
		input   map[string]any
		want    storyRow
	}{
		{"title only", 1, map[string]any{"title": "The Red Fox"}, storyRow{"The Red Fox", "the-fox", "A quick fox.", 2}},
		{"slug and content", 2, map[string]any{"slug": "red-fox", "content": "A quick red fox."}, storyRow{"The Red Fox", "red-fox", "A quick red fox.", 3}},
		{"nothing", 3, map[string]any{}, storyRow{"The Red Fox", "red-fox", "A quick red fox.", 4}},
	}
	for _, step := range steps {
		var got struct{ UpdateStory storyResult }
		e.Post(root.Token, update, map[string]any{"id": s.ID, "v": step.version, "input": step.input}).Decode(t, &got)
		u := got.UpdateStory
		if (storyRow{u.Title, u.Slug, u.Content, u.Version}) != step.want || u.ID != s.ID {
			t.Errorf("%s: updateStory = %+v, want %+v", step.name, u, step.want)
		}
		if row, _ := e.storyRow(s.ID); row != step.want {
			t.Errorf("%s: stored = %+v, want %+v", step.name, row, step.want)
		}
	}

	// A non-admin may delete nothing.
	r := e.Post(alice.Token, `mutation($id: ID!) { deleteStory(id: $id) }`, map[string]any{"id": s.ID})
	r.WantCode(t, graph.CodeForbidden)

	var deleted struct{ DeleteStory bool }
	e.Post(root.Token, `mutation($id: ID!) { deleteStory(id: $id) }`, map[string]any{"id": s.ID}).Decode(t, &deleted)
	if !deleted.DeleteStory {
		t.Error("deleteStory = false, want true")
	}
	if _, ok := e.storyRow(s.ID); ok {
		t.Error("story still stored after deleteStory")
	}
	e.Post(root.Token, `mutation($id: ID!) { deleteStory(id: $id) }`, map[string]any{"id": s.ID}).WantCode(t, graph.CodeNotFound)
}

func TestStoryAdminRejects(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	root := e.NewUser("root@example.com", true)
	alice := e.NewUser("alice@example.com", false)
	fox := e.story("The Fox", "the-fox")
	e.story("The Owl", "the-owl")
	e.Exec(`UPDATE stories SET version = 5 WHERE id = $1`, fox)
	wantFox := storyRow{"The Fox", "the-fox", "Once upon a time.", 5}

	const (
		create = `mutation($input: CreateStoryInput!) { createStory(input: $input) { id } }`
		update = `mutation($id: ID!, $v: Int!, $input: UpdateStoryInput!) { updateStory(id: $id, expectedVersion: $v, input: $input) { id } }`
		remove = `mutation($id: ID!) { deleteStory(id: $id) }`
	)
	newStory := map[string]any{"title": "New", "slug": "new", "content": "Text."}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for k, v := range newStory {
			m[k] = v
		}
		m[k] = v
		return m
	}
	tests := []struct {
		name  string
		token string
		query string
		vars  map[string]any
		code  string
	}{
		{"create as non-admin", alice.Token, create, map[string]any{"input": newStory}, graph.CodeForbidden},
		{"create anonymous", "", create, map[string]any{"input": newStory}, graph.CodeUnauthenticated},
		{"create duplicate slug", root.Token, create, map[string]any{"input": with("slug", "the-fox")}, graph.CodeConflict},
		{"create bad slug", root.Token, create, map[string]any{"input": with("slug", "Not A Slug")}, graph.CodeBadUserInput},
		{"create slug with double hyphen", root.Token, create, map[string]any{"input": with("slug", "a--b")}, graph.CodeBadUserInput},
		{"create slug too long", root.Token, create, map[string]any{"input": with("slug", strings.Repeat("a", 201))}, graph.CodeBadUserInput},
		{"create blank title", root.Token, create, map[string]any{"input": with("title", " ")}, graph.CodeBadUserInput},
		{"create title too long", root.Token, create, map[string]any{"input": with("title", strings.Repeat("t", 301))}, graph.CodeBadUserInput},
		{"create empty content", root.Token, create, map[string]any{"input": with("content", "")}, graph.CodeBadUserInput},
		{"update as non-admin", alice.Token, update, map[string]any{"id": fox, "v": 5, "input": map[string]any{"title": "X"}}, graph.CodeForbidden},
		{"update anonymous", "", update, map[string]any{"id": fox, "v": 5, "input": map[string]any{"title": "X"}}, graph.CodeUnauthenticated},
		{"update stale version", root.Token, update, map[string]any{"id": fox, "v": 4, "input": map[string]any{"title": "X"}}, graph.CodeConflict},
		{"update future version", root.Token, update, map[string]any{"id": fox, "v": 6, "input": map[string]any{"title": "X"}}, graph.CodeConflict},
		{"update duplicate slug", root.Token, update, map[string]any{"id": fox, "v": 5, "input": map[string]any{"slug": "the-owl"}}, graph.CodeConflict},
		{"update null title", root.Token, update, map[string]any{"id": fox, "v": 5, "input": map[string]any{"title": nil}}, graph.CodeBadUserInput},
		{"update null slug", root.Token, update, map[string]any{"id": fox, "v": 5, "input": map[string]any{"slug": nil}}, graph.CodeBadUserInput},
		{"update null content", root.Token, update, map[string]any{"id": fox, "v": 5, "input": map[string]any{"content": nil}}, graph.CodeBadUserInput},
		{"update bad slug", root.Token, update, map[string]any{"id": fox, "v": 5, "input": map[string]any{"slug": "-fox"}}, graph.CodeBadUserInput},
		{"update blank title", root.Token, update, map[string]any{"id": fox, "v": 5, "input": map[string]any{"title": ""}}, graph.CodeBadUserInput},
		{"update unknown id", root.Token, update, map[string]any{"id": uuid.New(), "v": 1, "input": map[string]any{"title": "X"}}, graph.CodeNotFound},
		{"update malformed id", root.Token, update, map[string]any{"id": "fox", "v": 5, "input": map[string]any{"title": "X"}}, graph.CodeBadUserInput},
		{"delete as non-admin", alice.Token, remove, map[string]any{"id": fox}, graph.CodeForbidden},
		{"delete anonymous", "", remove, map[string]any{"id": fox}, graph.CodeUnauthenticated},
		{"delete unknown id", root.Token, remove, map[string]any{"id": uuid.New()}, graph.CodeNotFound},
	}
	for _, tt := range tests {
		e.wantRefusal(t, tt.name, tt.token, tt.query, tt.vars, tt.code, response.WantNullData)
	}
	t.Run("inline null title", func(t *testing.T) {
		t.Parallel()
		e := e.on(t)
		r := e.Post(root.Token, fmt.Sprintf(`mutation { updateStory(id: %q, expectedVersion: 5, input: {title: null}) { id } }`, fox), nil)
		r.WantCode(t, graph.CodeBadUserInput)
	})
	t.Cleanup(func() {
		if row, _ := e.storyRow(fox); row != wantFox {
			t.Errorf("story changed by refused mutations: %+v, want %+v", row, wantFox)
		}
		e.WantCount(2, `SELECT count(*) FROM stories`)
	})
}
