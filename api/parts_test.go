package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/narrate/narrate/app"
	"github.com/narrate/narrate/app/apptest"
	"github.com/narrate/narrate/voice"
	"github.com/narrate/narrate/voice/local"
)

// partsQuery follows a generation with its parts.
const partsQuery = `subscription($id: ID!) { generationProgress(id: $id) {
  status progress parts { index url contentType byteSize durationSeconds startChar endChar } } }`

// hookedProvider is the local provider with a hook before each synthesis
// (n counts them from 1), for a test to hold the worker between chunks.
type hookedProvider struct {
	*local.Provider
	calls atomic.Int32
	hook  func(ctx context.Context, n int)
}

func (p *hookedProvider) Synthesize(ctx context.Context, req voice.SynthesisRequest) (*voice.Audio, error) {
	p.hook(ctx, int(p.calls.Add(1)))
	return p.Provider.Synthesize(ctx, req)
}

type partJSON struct {
	Index           int
	URL             string
	ContentType     string
	ByteSize        int
	DurationSeconds *float64
	StartChar       int
	EndChar         int
}

type partsEvent struct {
	Status   string
	Progress int
	Parts    []partJSON
}

func decodeParts(t testing.TB, ev event) partsEvent {
	t.Helper()
	if ev.Kind != "data" {
		t.Fatalf("want data, got %s %+v", ev.Kind, ev.Errors)
	}
	var body struct{ GenerationProgress partsEvent }
	if err := json.Unmarshal(ev.Data, &body); err != nil {
		t.Fatal(err)
	}
	return body.GenerationProgress
}

// TestListenWhileItNarrates follows a narration over a subscription with
// its parts: the first part arrives, and plays through its signed link,
// while the worker is held before the second chunk; the parts are the
// owner's alone; once complete, the parts cover the story in order and
// their audio, joined, is the final file.
func TestListenWhileItNarrates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	release := make(chan struct{})
	provider := &hookedProvider{Provider: local.New(local.Config{ChunkLimit: 60, EspeakPath: "-"}), hook: func(ctx context.Context, n int) {
		if n == 2 {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
	}}
	srv := apptest.Start(t, e.DB, apptest.WithWorker(), apptest.WithApp(app.WithVoice(provider)))
	e.URL = srv.URL
	alice := e.NewUser("alice@example.com", false)
	bob := e.NewUser("bob@example.com", false)
	admin := e.NewUser("admin@example.com", true)
	var storyID uuid.UUID
	e.Scan(`INSERT INTO stories (title, slug, content) VALUES ('The Fox and the River', 'the-fox', $1) RETURNING id`,
		[]any{flowStory}, &storyID)
	e.mustCreateSample(alice.Token, audio("sample.webm", "audio/webm"))
	e.verifySample(alice.Token, audio("phrase.webm", "audio/webm")).Decode(t, &struct{}{})
	var started struct{ StartGeneration struct{ ID string } }
	e.Post(alice.Token, `mutation($id: ID!) { startGeneration(storyId: $id) { id } }`,
		map[string]any{"id": storyID.String()}).Decode(t, &started)
	genID := started.StartGeneration.ID

	c := apptest.DialWS(t, srv.URL, protoTransportWS, apptest.AuthInit(alice.Token))
	c.Ack()
	c.Subscribe("1", partsQuery, map[string]any{"id": genID})
	var ev partsEvent
	for len(ev.Parts) == 0 {
		ev = decodeParts(t, c.NextEvent("1", 30*time.Second))
	}
	if ev.Status != "IN_PROGRESS" || len(ev.Parts) != 1 {
		t.Fatalf("first event with parts: %+v, want one part while IN_PROGRESS", ev)
	}
	first := ev.Parts[0]
	res, body := apptest.Fetch(t, http.MethodGet, first.URL, nil)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(body, "RIFF") || len(body) != first.ByteSize {
		t.Fatalf("GET part 1 while narrating: HTTP %d, %d bytes starting %.4q; want the %d-byte WAV part",
			res.StatusCode, len(body), body, first.ByteSize)
	}
	if first.Index != 0 || first.StartChar != 0 || first.EndChar <= 0 || first.DurationSeconds == nil || *first.DurationSeconds <= 0 ||
		first.ContentType != "audio/wav" {
		t.Errorf("part 1 = %+v", first)
	}

	// Parts are owner-only: another user cannot see the generation, and an
	// admin, who can, sees none of its parts.
	query := `query($id: ID!) { generation(id: $id) { id parts { url } } }`
	var other struct{ Generation *struct{ Parts []partJSON } }
	e.Post(bob.Token, query, map[string]any{"id": genID}).Decode(t, &other)
	if other.Generation != nil {
		t.Errorf("bob sees %+v", other.Generation)
	}
	e.Post(admin.Token, query, map[string]any{"id": genID}).Decode(t, &other)
	if other.Generation == nil || len(other.Generation.Parts) != 0 {
		t.Errorf("an admin sees %+v, want the generation without parts", other.Generation)
	}

	close(release)
	for ev.Status != "COMPLETED" {
		ev = decodeParts(t, c.NextEvent("1", 30*time.Second))
	}
	var done struct{ Generation struct{ ResultURL string } }
	e.Post(alice.Token, `query($id: ID!) { generation(id: $id) { resultUrl } }`, map[string]any{"id": genID}).Decode(t, &done)
	_, final := apptest.Fetch(t, http.MethodGet, done.Generation.ResultURL, nil)
	if len(ev.Parts) < 2 {
		t.Fatalf("%d parts, want the story in several", len(ev.Parts))
	}
	// The parts cover the story in order, and their samples, joined, are
	// the final file's (every WAV here has a 44-byte header).
	var pcm bytes.Buffer
	end := 0
	for i, p := range ev.Parts {
		if p.Index != i || p.StartChar < end || p.EndChar <= p.StartChar {
			t.Errorf("part %d = %+v after character %d", i, p, end)
		}
		end = p.EndChar
		_, body := apptest.Fetch(t, http.MethodGet, p.URL, nil)
		pcm.WriteString(body[44:])
	}
	if n := utf8.RuneCountInString(strings.TrimRight(flowStory, " ")); end < n {
		t.Errorf("the parts end at character %d of %d", end, n)
	}
	if len(final) < 44 || final[44:] != pcm.String() {
		t.Errorf("final file (%d bytes) is not the parts' audio joined (%d bytes of samples)", len(final), pcm.Len())
	}
}
