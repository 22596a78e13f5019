package api_test

import (
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/narrate/narrate/generation"
	"github.com/narrate/narrate/graph"
)

// TestCrossUserIsolation has Bob try every way the API offers to read,
// list and cancel Alice's generations: he sees none of them and changes
// nothing.
func TestCrossUserIsolation(t *testing.T) {
	t.Parallel()
	e, l := newListing(t)
	alice, bob, s1, s2, base := l.alice, l.bob, l.a, l.b, l.base
	var alices []uuid.UUID
	for i, st := range []generation.Status{generation.Pending, generation.InProgress, generation.Completed, generation.Failed} {
		id := e.generationAt(alice, s1, st, base.Add(time.Duration(i)*time.Minute))
		e.logAt(id, "started", base.Add(time.Duration(i)*time.Minute+time.Second))
		alices = append(alices, id)
	}
	alices = append(alices, e.generationAt(alice, s2, generation.Pending, base.Add(10*time.Minute)))
	bobs := e.generationAt(bob, s1, generation.Pending, base.Add(20*time.Minute))
	e.logAt(bobs, "started", base.Add(21*time.Minute))

	before := map[uuid.UUID]genState{}
	for _, id := range alices {
		before[id] = e.genState(id)
	}

	for _, id := range alices {
		t.Run("read "+before[id].Status, func(t *testing.T) {
			t.Parallel()
			e := e.on(t)
			var got struct{ Generation *generationView }
			e.Post(bob.Token, `query($id: ID!) { generation(id: $id) { `+generationFields+` } }`, map[string]any{"id": id}).Decode(t, &got)
			if got.Generation != nil {
				t.Errorf("bob read alice's generation: %+v", got.Generation)
			}
		})
		t.Run("cancel "+before[id].Status, func(t *testing.T) {
			t.Parallel()
			e := e.on(t)
			r := e.Post(bob.Token, `mutation($id: ID!) { cancelGeneration(id: $id) { id status } }`, map[string]any{"id": id})
			r.WantCode(t, graph.CodeNotFound)
			r.WantNullData(t)
		})
	}

	// Every list shows Bob his own rows and nothing of Alice's.
	onlyBobs := []string{bobs.String()}
	lists := []struct {
		name, query string
		pick        func(v listView) []string
		want        []string
	}{
		{"viewer.generations", `{ viewer { generations(first: 100) { nodes { id } } } }`,
			viewerGenerationIDs, onlyBobs},
		{"viewer.generations of alice's story", `query($s: ID!) { viewer { generations(first: 100, storyId: $s) { nodes { id } } } }`,
			viewerGenerationIDs, onlyBobs},
		{"viewer.generations by status", `{ viewer { generations(first: 100, status: PENDING) { nodes { id } } } }`,
			viewerGenerationIDs, onlyBobs},
		{"story.myGenerations", `query($s: ID!) { story(id: $s) { myGenerations(first: 100) { nodes { id } } } }`,
			func(v listView) []string { return v.Story.MyGenerations.ids() }, onlyBobs},
		{"stories.myGenerations", `{ stories { nodes { myGenerations(first: 100) { nodes { id } } } } }`,
			func(v listView) []string {
				var out []string
				for _, s := range v.Stories.Nodes {
					out = append(out, s.MyGenerations.ids()...)
				}
				return out
			}, onlyBobs},
		{"own generation's logs and user", `{ viewer { generations { nodes { user { id email } logs { nodes { id } } } } } }`,
			func(v listView) []string {
				var out []string
				for _, g := range v.Viewer.Generations.Nodes {
					out = append(out, g.User.ID, deref(g.User.Email))
					out = append(out, g.Logs.ids()...)
				}
				return out
			},
			append([]string{bob.ID.String(), bob.Email}, e.IDs(`SELECT id FROM generation_logs WHERE generation_id = $1`, bobs)...)},
	}
	for _, l := range lists {
		t.Run(l.name, func(t *testing.T) {
			t.Parallel()
			e := e.on(t)
			var got listView
			e.Post(bob.Token, l.query, map[string]any{"s": s1}).Decode(t, &got)
			if ids := l.pick(got); !slices.Equal(ids, l.want) {
				t.Errorf("bob sees %v, want %v", ids, l.want)
			}
		})
	}

	t.Cleanup(func() {
		for id, was := range before {
			if now := e.genState(id); now != was {
				t.Errorf("alice's generation %s changed: %+v, was %+v", id, now, was)
			}
		}
		e.WantCount(0, `SELECT count(*) FROM generation_logs WHERE event = 'canceled'`)
	})
}

// listView holds the lists TestCrossUserIsolation reads.
type listView struct {
	Viewer struct {
		Generations struct {
			Nodes []struct {
				ID   string
				User struct {
					ID    string
					Email *string
				}
				Logs idPage
			}
		}
	}
	Story struct {
		MyGenerations idPage
	}
	Stories struct {
		Nodes []struct{ MyGenerations idPage }
	}
}

func viewerGenerationIDs(v listView) []string {
	var out []string
	for _, g := range v.Viewer.Generations.Nodes {
		out = append(out, g.ID)
	}
	return out
}
