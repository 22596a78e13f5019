package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/narrate/narrate/app/apptest"
	"github.com/narrate/narrate/storage"
)

// flowStory is several sentences, so that with the flow server's chunk
// limit it is narrated in several chunks.
const flowStory = "Once upon a time a small fox lived at the edge of a quiet forest. " +
	"Every morning she walked to the river to watch the sun rise over the water. " +
	"One day she met an old turtle who knew every story the river had ever told. " +
	"They became friends, and the fox listened to a new story every evening."

// TestFullNarrationFlow walks the product's main path over the API with
// the local provider: record a voice sample, verify it, start a narration,
// follow its progress over a subscription until it completes, and play the
// result through its signed link, which works without a token while a
// forged or expired link is refused.
func TestFullNarrationFlow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := apptest.Start(t, e.DB, apptest.WithWorker())
	e.URL = srv.URL
	alice := e.NewUser("alice@example.com", false)
	var storyID uuid.UUID
	e.Scan(`INSERT INTO stories (title, slug, content) VALUES ('The Fox and the River', 'the-fox', $1) RETURNING id`,
		[]any{flowStory}, &storyID)

	// Upload a sample and verify it; the local provider accepts any
	// non-empty recording.
	sample := e.mustCreateSample(alice.Token, audio("sample.webm", "audio/webm;codecs=opus"), audio("sample2.mp3", "audio/mpeg"))
	var verified struct{ VerifyVoiceSample sampleJSON }
	e.verifySample(alice.Token, audio("phrase.webm", "audio/webm")).Decode(t, &verified)
	if !verified.VerifyVoiceSample.Verified || verified.VerifyVoiceSample.ID != sample.ID {
		t.Fatalf("verifyVoiceSample = %+v, want sample %s verified", verified.VerifyVoiceSample, sample.ID)
	}

	var started struct {
		StartGeneration struct{ ID, Status string }
	}
	e.Post(alice.Token, `mutation($id: ID!) { startGeneration(storyId: $id) { id status } }`,
		map[string]any{"id": storyID.String()}).Decode(t, &started)
	genID := started.StartGeneration.ID

	// Follow the generation until it completes. The first event is the
	// current state, so a worker faster than the subscription is no
	// problem.
	c := apptest.DialWS(t, srv.URL, protoTransportWS, apptest.AuthInit(alice.Token))
	c.Ack()
	c.Subscribe("1", progressQuery, map[string]any{"id": genID})
	events := progressUntilComplete(t, c, "1", 30*time.Second)
	last := lastProgress(t, events)
	if last.Status != "COMPLETED" || last.Progress != 100 {
		t.Fatalf("events %v, want to end COMPLETED/100", events)
	}
	for i := 1; i < len(events); i++ {
		if events[i].Progress < events[i-1].Progress {
			t.Errorf("progress went backwards: %v", events)
		}
	}

	var got struct {
		Generation struct {
			Status    string
			ResultURL *string
			Logs      struct{ Nodes []struct{ Event string } }
		}
	}
	e.Post(alice.Token, `query($id: ID!) { generation(id: $id) { status resultUrl logs { nodes { event } } } }`,
		map[string]any{"id": genID}).Decode(t, &got)
	if got.Generation.ResultURL == nil {
		t.Fatalf("completed generation has no resultUrl: %+v", got.Generation)
	}
	var logEvents []string
	for _, l := range got.Generation.Logs.Nodes {
		logEvents = append(logEvents, l.Event)
	}
	// The story was narrated in several chunks, each logged.
	joined := strings.Join(logEvents, ", ")
	for _, want := range []string{"claimed", "chunk 1/", "chunk 2/", "completed"} {
		if !strings.Contains(joined, want) {
			t.Errorf("log events %q lack %q", logEvents, want)
		}
	}

	// The signed link is absolute and plays without a token.
	link := *got.Generation.ResultURL
	if !strings.HasPrefix(link, srv.URL+storage.AudioPath) {
		t.Fatalf("resultUrl %q is not an absolute link to the server's audio", link)
	}
	res, body := apptest.Fetch(t, http.MethodGet, link, nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET resultUrl: HTTP %d: %s", res.StatusCode, body)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "audio/") {
		t.Errorf("Content-Type = %q, want audio", ct)
	}
	if len(body) <= 44 || body[:4] != "RIFF" || body[8:12] != "WAVE" || body[12:16] != "fmt " {
		t.Errorf("result is not a WAV file: %d bytes starting %q", len(body), body[:min(len(body), 16)])
	}

	// Forged and expired links are refused.
	var key string
	e.Scan(`SELECT result_url FROM story_generations WHERE id = $1`, []any{genID}, &key)
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	forged := map[string]string{
		"expired":              srv.App.Signer.URL(key, -time.Minute),
		"tampered signature":   withQuery(u, "sig", flipFirst(q.Get("sig"))),
		"extended expiry":      withQuery(u, "exp", "99999999999"),
		"no signature":         withQuery(u, "sig", ""),
		"another key":          strings.Replace(link, url.PathEscape(genID), url.PathEscape(uuid.NewString()), 1),
		"signed by a stranger": storage.NewSigner([]byte("another secret"), srv.URL).URL(key, time.Hour),
	}
	for name, l := range forged {
		if l == link {
			t.Fatalf("%s: link unchanged", name)
		}
		if res, body := apptest.Fetch(t, http.MethodGet, l, nil); res.StatusCode != http.StatusForbidden {
			t.Errorf("%s link: HTTP %d (%.40q), want 403", name, res.StatusCode, body)
		}
	}
}

// withQuery returns u with query parameter name set to value.
func withQuery(u *url.URL, name, value string) string {
	c := *u
	q := c.Query()
	q.Set(name, value)
	c.RawQuery = q.Encode()
	return c.String()
}

// flipFirst changes the first character of a base64url string. (The last
// one may carry only padding bits, which decoding ignores.)
func flipFirst(s string) string {
	if s == "" {
		return "A"
	}
	first := "A"
	if s[0] == 'A' {
		first = "B"
	}
	return first + s[1:]
}
