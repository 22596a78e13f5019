package api_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/narrate/narrate/api"
	"github.com/narrate/narrate/auth"
	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/db/dbtest"
	"github.com/narrate/narrate/graph"
	"github.com/narrate/narrate/storage"
	"github.com/narrate/narrate/voice/local"
	"github.com/narrate/narrate/worker"
)

// wfServer is the whole narration stack as `serve` wires it: the API with
// the local voice provider, local audio storage behind signed links, and
// an embedded worker.
type wfServer struct {
	*env
	signer *storage.Signer
}

func newWorkerFlowServer(t *testing.T) *wfServer {
	t.Helper()
	ctx := context.Background()
	database := dbtest.New(t)
	app, err := db.Open(ctx, database.AppURL, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(app.Close)
	admin, err := pgxpool.New(ctx, database.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	verifier, err := auth.NewVerifier(ctx, auth.Config{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	store, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	logger := slog.New(slog.DiscardHandler)
	// A small chunk limit makes the demo story several chunks long.
	provider := local.New(local.Config{ChunkLimit: 200, EspeakPath: "-", Logger: logger})

	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	signer := storage.NewSigner([]byte("audio-test-key"), base)
	srv.Config.Handler = api.New(api.Options{
		DB: app, Verifier: verifier, Logger: logger,
		Resolver: &graph.Resolver{DB: app, Logger: logger, Voice: provider,
			SignAudio: func(key string) string { return signer.URL(key, time.Hour) }},
		Audio: storage.Handler(store, signer),
	})
	srv.Start()
	t.Cleanup(srv.Close)

	w, err := worker.New(worker.Config{
		Queue: app, Provider: provider, Store: store, Concurrency: 2,
		Lease: 5 * time.Second, PollInterval: 20 * time.Millisecond, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	})
	return &wfServer{
		env:    &env{t: t, URL: base, DB: database, Admin: admin, App: app, Statements: &atomic.Int64{}},
		signer: signer,
	}
}

// wfUpload sends a GraphQL multipart request (the graphql-multipart-request
// spec) with one WAV file per entry of paths, each bound to a variable path
// such as "variables.samples.0".
func (s *wfServer) wfUpload(token, query string, vars map[string]any, paths []string) response {
	s.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	ops, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	_ = mw.WriteField("operations", string(ops))
	m := map[string][]string{}
	for i, p := range paths {
		m[fmt.Sprint(i)] = []string{p}
	}
	mapping, _ := json.Marshal(m)
	_ = mw.WriteField("map", string(mapping))
	for i := range paths {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="%d"; filename="sample%d.wav"`, i, i))
		h.Set("Content-Type", "audio/wav")
		part, err := mw.CreatePart(h)
		if err != nil {
			s.t.Fatal(err)
		}
		_, _ = part.Write(wfWAV())
	}
	_ = mw.Close()
	req, err := http.NewRequest(http.MethodPost, s.URL+"/graphql", &body)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	return s.send(req)
}

// wfWAV is a short silent WAV recording.
func wfWAV() []byte {
	const dataLen = 4410 // 0.1 s of 16-bit mono at 22050 Hz
	b := []byte("RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x22\x56\x00\x00\x44\xac\x00\x00\x02\x00\x10\x00data")
	b = binary.LittleEndian.AppendUint32(b, dataLen)
	b = append(b, make([]byte, dataLen)...)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(b)-8))
	return b
}

// TestNarrationFlowWithWorker walks the README's flow over GraphQL with the
// local provider: upload a sample, verify it, start a narration, poll until
// it is COMPLETED, and play the audio through its signed resultUrl, which a
// forged or expired link cannot.
func TestNarrationFlowWithWorker(t *testing.T) {
	t.Parallel()
	s := newWorkerFlowServer(t)
	alice := s.newUser("alice@example.com", false)
	story := s.story("The Fox", "the-fox")
	s.exec(`UPDATE stories SET content = repeat('The fox ran over the hill. ', 30) WHERE id = $1`, story)

	var created struct {
		CreateVoiceSample struct {
			Verified bool `json:"verified"`
		} `json:"createVoiceSample"`
	}
	s.wfUpload(alice.Token, `mutation($s: [Upload!]!) { createVoiceSample(input: {name: "me", samples: $s}) { verified } }`,
		map[string]any{"s": []any{nil, nil}}, []string{"variables.s.0", "variables.s.1"}).decode(t, &created)
	if created.CreateVoiceSample.Verified {
		t.Fatal("a new sample is verified before its recording was checked")
	}
	var verified struct {
		VerifyVoiceSample struct {
			Verified bool `json:"verified"`
		} `json:"verifyVoiceSample"`
	}
	s.wfUpload(alice.Token, `mutation($r: Upload!) { verifyVoiceSample(recording: $r) { verified } }`,
		map[string]any{"r": nil}, []string{"variables.r"}).decode(t, &verified)
	if !verified.VerifyVoiceSample.Verified {
		t.Fatal("the local provider's verification did not verify")
	}

	var started struct {
		StartGeneration struct {
			ID string `json:"id"`
		} `json:"startGeneration"`
	}
	s.post(alice.Token, `mutation($s: ID!) { startGeneration(storyId: $s) { id } }`, map[string]any{"s": story}).decode(t, &started)

	type generation struct {
		Status    string  `json:"status"`
		Progress  int     `json:"progress"`
		ResultURL *string `json:"resultUrl"`
		Logs      struct {
			Edges []struct {
				Node struct {
					Event string `json:"event"`
				} `json:"node"`
			} `json:"edges"`
		} `json:"logs"`
	}
	var got struct {
		Generation generation `json:"generation"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for got.Generation.Status != "COMPLETED" {
		if time.Now().After(deadline) {
			t.Fatalf("generation never completed: %+v", got.Generation)
		}
		time.Sleep(20 * time.Millisecond)
		s.post(alice.Token, `query($id: ID!) { generation(id: $id) { status progress resultUrl logs(first: 50) { edges { node { event } } } } }`,
			map[string]any{"id": started.StartGeneration.ID}).decode(t, &got)
		if got.Generation.Status == "FAILED" {
			t.Fatalf("generation failed: %+v", got.Generation)
		}
	}
	g := got.Generation
	var events []string
	for _, e := range g.Logs.Edges {
		events = append(events, e.Node.Event)
	}
	if g.Progress != 100 || g.ResultURL == nil || len(events) < 4 || events[0] != "claimed" ||
		!strings.HasPrefix(events[1], "chunk 1/") || events[len(events)-1] != "completed" {
		t.Fatalf("completed generation = %+v, logs %q", g, events)
	}

	// The link plays without a bearer token.
	res, err := http.Get(*g.ResultURL)
	if err != nil {
		t.Fatal(err)
	}
	audio, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "audio/wav" ||
		len(audio) < 44 || string(audio[:4]) != "RIFF" || string(audio[8:12]) != "WAVE" {
		t.Fatalf("GET resultUrl = %d %s, %d bytes", res.StatusCode, res.Header.Get("Content-Type"), len(audio))
	}

	key := strings.TrimPrefix(strings.SplitN(*g.ResultURL, "?", 2)[0], s.URL+storage.AudioPath)
	forged := strings.Replace(*g.ResultURL, "sig=", "sig=A", 1)
	expired := s.signer.URL(key, -time.Minute)
	otherKey := strings.Replace(*g.ResultURL, key, "generations/someone-else.wav", 1)
	for name, link := range map[string]string{"forged": forged, "expired": expired, "other key": otherKey} {
		res, err := http.Get(link)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("%s link: HTTP %d, want 403", name, res.StatusCode)
		}
	}
}
