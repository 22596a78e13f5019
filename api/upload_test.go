package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/narrate/narrate/app/apptest"
	"github.com/narrate/narrate/db/dbtest"
	"github.com/narrate/narrate/generation"
	"github.com/narrate/narrate/graph"
	"github.com/narrate/narrate/limit"
	"github.com/narrate/narrate/voice"
	"github.com/narrate/narrate/voice/local"
)

// multipartBody writes a GraphQL multipart request: operations, map, and
// then what files writes.
type multipartBody struct {
	ops, fileMap string
	// pad, when set, makes the operations part that many bytes larger,
	// generated as it is sent: a "pad" variable of x's.
	pad   int64
	files func(w *multipart.Writer) error
}

// reader streams the body through a pipe, so the client sends it chunked
// (no Content-Length) and never holds it whole.
func (b multipartBody) reader() (io.Reader, string) {
	pr, pw := io.Pipe()
	w := multipart.NewWriter(pw)
	go func() {
		var err error
		if b.pad > 0 {
			var part io.Writer
			if part, err = w.CreateFormField("operations"); err == nil {
				ops := strings.TrimSuffix(strings.TrimSpace(b.ops), "}}")
				if _, err = io.WriteString(part, ops+`,"pad":"`); err == nil {
					if _, err = io.CopyN(part, repeat('x'), b.pad); err == nil {
						_, err = io.WriteString(part, `"}}`)
					}
				}
			}
		} else {
			err = w.WriteField("operations", b.ops)
		}
		if err == nil {
			err = w.WriteField("map", b.fileMap)
		}
		if err == nil && b.files != nil {
			err = b.files(w)
		}
		if err == nil {
			err = w.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr, w.FormDataContentType()
}

// filePart writes one file part of n bytes, starting with an audio header,
// generated as it is sent.
func filePart(name string, n int64) func(w *multipart.Writer) error {
	return func(w *multipart.Writer) error {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename="f.wav"`, name))
		h.Set("Content-Type", "audio/wav")
		part, err := w.CreatePart(h)
		if err != nil {
			return err
		}
		header := audioHeader("audio/wav")
		if _, err := part.Write(header); err != nil {
			return err
		}
		_, err = io.CopyN(part, zeros{}, n-int64(len(header)))
		return err
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// repeat reads as an endless run of one byte.
type repeat byte

func (c repeat) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c)
	}
	return len(p), nil
}

// sendMultipart posts a streamed multipart body.
func (e *env) sendMultipart(token string, b multipartBody) response {
	e.t.Helper()
	body, contentType := b.reader()
	return e.postRaw(contentType, body, token)
}

const verifyOps = `{"query":"mutation($r: Upload!) { verifyVoiceSample(recording: $r) { verified } }","variables":{"r":null}}`

// heapPeak runs fn while sampling the live heap of this process, and
// returns how far above its level before fn it rose at most.
func heapPeak(t *testing.T, fn func()) uint64 {
	t.Helper()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	runtime.GC()
	base := read()
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			if v := read(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	fn()
	close(done)
	wg.Wait()
	if p := peak.Load(); p > base {
		return p - base
	}
	return 0
}

// TestUploadAttacksAreRefusedCheaply sends the uploads, each as a
// chunked body of hundreds of megabytes, and reads from the process how
// much its heap grew. Not parallel: the heap is the whole process's, so
// nothing else may run meanwhile.
func TestUploadAttacksAreRefusedCheaply(t *testing.T) {
	fake := newFakeElevenLabs(t)
	e := newEnv(t, withVoice(fake.provider()))
	alice := e.NewUser("alice@example.com", false)
	e.mustCreateSample(alice.Token, audio("a.mp3", "audio/mpeg"))
	spoolDir := os.TempDir()
	const huge = 240 << 20

	tests := []struct {
		name   string
		token  string
		body   multipartBody
		status int
		code   string
	}{
		{name: "anonymous 240 MB", body: multipartBody{ops: verifyOps, fileMap: `{"0":["variables.r"]}`, files: filePart("0", huge)},
			status: http.StatusUnauthorized, code: graph.CodeUnauthenticated},
		{name: "240 MB to an operation without uploads", token: alice.Token,
			body:   multipartBody{ops: `{"query":"{ viewer { id } }","variables":{"r":null}}`, fileMap: `{"0":["variables.r"]}`, files: filePart("0", huge)},
			status: http.StatusBadRequest, code: graph.CodeBadUserInput},
		{name: "240 MB where one 10 MB file fits", token: alice.Token,
			body:   multipartBody{ops: verifyOps, fileMap: `{"0":["variables.r"]}`, files: filePart("0", huge)},
			status: http.StatusRequestEntityTooLarge, code: graph.CodeBadUserInput},
		{name: "68 MB operations part", token: alice.Token,
			body:   multipartBody{ops: verifyOps, pad: 68 << 20, fileMap: `{}`},
			status: http.StatusRequestEntityTooLarge, code: graph.CodeBadUserInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.on(t)
			var r response
			start := time.Now()
			grew := heapPeak(t, func() { r = e.sendMultipart(tt.token, tt.body) })
			t.Logf("answered %d in %v; heap grew by at most %.1f MB", r.Status, time.Since(start).Round(time.Millisecond), float64(grew)/(1<<20))
			if r.Status != tt.status {
				t.Fatalf("status %d, want %d: %.300s", r.Status, tt.status, r.Raw)
			}
			r.WantCode(t, tt.code)
			if limit := uint64(24 << 20); grew > limit {
				t.Errorf("heap grew by %d MB, want under %d MB", grew>>20, limit>>20)
			}
		})
	}
	if leftovers, _ := filepath.Glob(filepath.Join(spoolDir, "narrate-upload-*")); len(leftovers) > 0 {
		t.Errorf("spooled uploads left behind: %v", leftovers)
	}
	if len(fake.state().Transcripts) != 0 {
		t.Error("a refused upload reached the provider")
	}
	// Still healthy.
	res, _ := e.Do(http.MethodGet, "/readyz", nil)
	if res.StatusCode != http.StatusOK {
		t.Errorf("/readyz %d after the attacks", res.StatusCode)
	}
}

func TestUploadMapPaths(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withVoice(local.New(local.Config{EspeakPath: "-"})))
	alice := e.NewUser("alice@example.com", false)
	createOps := func(vars string) string {
		q, _ := json.Marshal(createSampleMutation)
		return `{"query":` + string(q) + `,"variables":` + vars + `}`
	}
	ok := createOps(`{"input":{"samples":[null]}}`)
	tests := []struct {
		name, ops, fileMap string
		files              []string
		message            string // empty: it runs
	}{
		{name: "valid", ops: ok, fileMap: `{"0":["variables.input.samples.0"]}`, files: []string{"0"}},
		{name: "index past the list", ops: ok, fileMap: `{"0":["variables.input.samples.5"]}`, files: []string{"0"}, message: "outside the list"},
		{name: "negative index", ops: ok, fileMap: `{"0":["variables.input.samples.-1"]}`, files: []string{"0"}, message: "outside the list"},
		{name: "not an index", ops: ok, fileMap: `{"0":["variables.input.samples.x"]}`, files: []string{"0"}, message: "outside the list"},
		{name: "through a null", ops: ok, fileMap: `{"0":["variables.input.samples.0.deeper"]}`, files: []string{"0"}, message: "neither an object nor a list"},
		{name: "missing key", ops: ok, fileMap: `{"0":["variables.input.nope"]}`, files: []string{"0"}, message: "not in the variables"},
		{name: "onto a value", ops: createOps(`{"input":{"samples":[null],"name":"x"}}`), fileMap: `{"0":["variables.input.name"]}`, files: []string{"0"}, message: "not to a null"},
		{name: "outside the variables", ops: ok, fileMap: `{"0":["operationName"]}`, files: []string{"0"}, message: "does not name a variable of type Upload"},
		{name: "a variable of another type", ops: `{"query":"mutation($id: ID!, $r: Upload!) { startGeneration(storyId: $id) { id } verifyVoiceSample(recording: $r) { id } }","variables":{"id":null,"r":null}}`,
			fileMap: `{"0":["variables.id"]}`, files: []string{"0"}, message: "does not name a variable of type Upload"},
		{name: "mapped to nothing", ops: ok, fileMap: `{"0":[]}`, files: []string{"0"}, message: "mapped to no variable"},
		{name: "file missing", ops: ok, fileMap: `{"0":["variables.input.samples.0"]}`, message: "does not carry"},
		{name: "file not in the map", ops: ok, fileMap: `{"0":["variables.input.samples.0"]}`, files: []string{"0", "1"}, message: "not a file the map names"},
		{name: "map not JSON", ops: ok, fileMap: `[`, message: "not a JSON object"},
		{name: "operations not JSON", ops: `nope`, fileMap: `{}`, message: "not a JSON object"},
		{name: "persisted query", ops: `{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"abc"}}}`, fileMap: `{}`, message: "must carry its query"},
		{name: "26 files", ops: ok, fileMap: func() string {
			m := map[string][]string{}
			for i := range 26 {
				m[fmt.Sprint(i)] = []string{"variables.input.samples.0"}
			}
			b, _ := json.Marshal(m)
			return string(b)
		}(), message: "1 to 25 files"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e.on(t)
			r := e.sendMultipart(alice.Token, multipartBody{ops: tt.ops, fileMap: tt.fileMap, files: func(w *multipart.Writer) error {
				for _, f := range tt.files {
					if err := filePart(f, 1024)(w); err != nil {
						return err
					}
				}
				return nil
			}})
			if tt.message == "" {
				r.Decode(t, &map[string]any{})
				return
			}
			if r.Status != http.StatusBadRequest {
				t.Errorf("status %d, want 400", r.Status)
			}
			r.WantError(t, graph.CodeBadUserInput, tt.message)
		})
	}
}

// TestManyFilesUpload is the legitimate use: 25 files in one sample,
// spooled past the memory threshold.
func TestManyFilesUpload(t *testing.T) {
	t.Parallel()
	fake := newFakeElevenLabs(t)
	e := newEnv(t, withVoice(fake.provider()), withLimits(func(l *limit.Settings) { l.UploadMemoryBytes = 64 << 10 }))
	alice := e.NewUser("alice@example.com", false)
	files := make([]upload, voice.MaxSamples)
	for i := range files {
		files[i] = sized(fmt.Sprintf("%d.wav", i), 512<<10)
	}
	got := e.mustCreateSample(alice.Token, files...)
	cloned := fake.state().Voices[got.ElevenlabsVoiceID].Files
	if len(cloned) != voice.MaxSamples {
		t.Fatalf("provider got %d files, want %d", len(cloned), voice.MaxSamples)
	}
	for i, f := range cloned {
		if !bytes.Equal(f.Data, files[i].Data) {
			t.Errorf("file %d arrived changed (%d bytes, want %d)", i, len(f.Data), len(files[i].Data))
		}
	}
}

func TestConcurrentUploadsPerUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withVoice(local.New(local.Config{EspeakPath: "-"})), withLimits(func(l *limit.Settings) { l.UploadsPerUser = 2 }))
	alice := e.NewUser("alice@example.com", false)
	bob := e.NewUser("bob@example.com", false)

	// Two uploads that have sent their first bytes and hang there; the
	// third is refused once the server holds both.
	upload := func() *heldRequest { return hold(t, e.URL, alice.Token, "multipart/form-data; boundary=b", "--b\r\n") }
	r, release := refusedWhileHeld(t, 2, upload, func() response { return e.verifySample(alice.Token, audio("p.webm", "audio/webm")) })
	if r.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	// An upload over the cap is refused without the server waiting for
	// its body.
	upload().wantAnswered(t, http.StatusTooManyRequests)
	// Other users are not affected.
	e.verifySample(bob.Token, audio("p.webm", "audio/webm")).WantCode(t, graph.CodeNotFound)
	release()
	// Released once the server has seen them go: alice may upload again.
	var last response
	dbtest.WaitFor(t, 0, func() bool {
		last = e.verifySample(alice.Token, audio("p.webm", "audio/webm"))
		return last.Status != http.StatusTooManyRequests
	}, "the held uploads were never released")
	last.WantCode(t, graph.CodeNotFound)
}

// TestSlowBodies holds bodies open without sending them: the server cuts
// them off at the body timeout, uploads when they fall under the minimum
// rate, and a connection that never finishes its headers at the header
// timeout.
func TestSlowBodies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withLimits(func(l *limit.Settings) {
		l.BodyTimeout = time.Second
		l.ReadHeaderTimeout = time.Second
		l.UploadMinBytesPerSecond = 1 << 20
	}))
	alice := e.NewUser("alice@example.com", false)
	addr := strings.TrimPrefix(e.URL, "http://")
	tests := []struct {
		name    string
		request string
	}{
		{"stalled JSON body", "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"query\":"},
		{"stalled upload", "POST /graphql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + alice.Token +
			"\r\nContent-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n--b\r\n\r\n"},
		{"stalled headers", "POST /graphql HTTP/1.1\r\nHost: x\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write([]byte(tt.request)); err != nil {
				t.Fatal(err)
			}
			// The server must give up well before this.
			_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
			start := time.Now()
			answer, err := io.ReadAll(conn)
			if err != nil {
				t.Fatalf("the server held the connection: %v (after %v)", err, time.Since(start))
			}
			t.Logf("closed after %v: %.80q", time.Since(start).Round(time.Millisecond), answer)
		})
	}
}

// heldRequest is a request that has sent the start of its body and waits
// to send the rest, holding whatever place the server counts it in.
type heldRequest struct {
	body     *io.PipeWriter
	answered chan struct{}
	status   int // once answered; 0 when the request failed
}

// hold sends a request whose body starts with start and never finishes.
func hold(t *testing.T, url, token, contentType, start string) *heldRequest {
	t.Helper()
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, url+"/graphql", pr)
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	h := &heldRequest{body: pw, answered: make(chan struct{})}
	go func() {
		defer close(h.answered)
		if res, err := http.DefaultClient.Do(req); err == nil {
			h.status = res.StatusCode
			res.Body.Close()
		}
	}()
	if _, err := pw.Write([]byte(start)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.release)
	return h
}

// holdRequest holds a JSON request.
func holdRequest(t *testing.T, url, token string) *heldRequest {
	t.Helper()
	return hold(t, url, token, "application/json", `{"query":`)
}

// release ends the body with an error and waits for the request to end.
func (h *heldRequest) release() {
	h.body.CloseWithError(io.ErrUnexpectedEOF)
	<-h.answered
}

// isAnswered reports whether the server has answered (or the request has
// failed).
func (h *heldRequest) isAnswered() bool {
	select {
	case <-h.answered:
		return true
	default:
		return false
	}
}

// wantAnswered expects the server to answer the held request with status,
// its body still unfinished: a refusal must not wait for the body.
func (h *heldRequest) wantAnswered(t *testing.T, status int) {
	t.Helper()
	dbtest.WaitFor(t, 0, h.isAnswered, "the server did not answer before the body was finished")
	if h.status != status {
		t.Errorf("answered %d, want %d", h.status, status)
	}
}

// refusedWhileHeld keeps n requests that hold (made by hold) in flight,
// and sends requests until one is refused with 429. A hold may reach the
// server after a request sent by send has taken the last place, and is
// then refused itself; such a hold is replaced, so at the refusal the n
// holds are what fills the cap. release ends the holds.
func refusedWhileHeld(t *testing.T, n int, hold func() *heldRequest, send func() response) (r response, release func()) {
	t.Helper()
	holds := make([]*heldRequest, n)
	release = func() {
		for _, h := range holds {
			if h != nil {
				h.release()
			}
		}
	}
	dbtest.WaitFor(t, 0, func() bool {
		for i, h := range holds {
			if h == nil || h.isAnswered() {
				holds[i] = hold()
			}
		}
		r = send()
		return r.Status == http.StatusTooManyRequests
	}, "a request over the cap was never refused")
	r.WantCode(t, graph.CodeRateLimited)
	return r, release
}

func TestConcurrentRequestCaps(t *testing.T) {
	t.Parallel()
	t.Run("per user", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, withLimits(func(l *limit.Settings) { l.RequestsPerUser = 2 }))
		alice := e.NewUser("alice@example.com", false)
		bob := e.NewUser("bob@example.com", false)
		held := func() *heldRequest { return holdRequest(t, e.URL, alice.Token) }
		r, release := refusedWhileHeld(t, 2, held, func() response { return e.Post(alice.Token, `{ viewer { id } }`, nil) })
		defer release()
		if !strings.Contains(r.Errors[0].Message, "account") {
			t.Errorf("message %q", r.Errors[0].Message)
		}
		// A request over the cap is refused without the server waiting for
		// its body.
		held().wantAnswered(t, http.StatusTooManyRequests)
		e.Post(bob.Token, `{ viewer { id } }`, nil).Decode(t, &map[string]any{})
		e.Post("", `{ viewer { id } }`, nil).Decode(t, &map[string]any{})
	})
	t.Run("per address", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, withLimits(func(l *limit.Settings) { l.RequestsPerAddress = 3 }))
		alice := e.NewUser("alice@example.com", false)
		held := func() *heldRequest { return holdRequest(t, e.URL, "") }
		r, release := refusedWhileHeld(t, 3, held, func() response { return e.Post(alice.Token, `{ viewer { id } }`, nil) })
		defer release()
		if !strings.Contains(r.Errors[0].Message, "address") {
			t.Errorf("message %q", r.Errors[0].Message)
		}
		// Probes are not GraphQL requests and stay available.
		if res, _ := e.Do(http.MethodGet, "/healthz", nil); res.StatusCode != http.StatusOK {
			t.Errorf("/healthz %d", res.StatusCode)
		}
	})
	t.Run("streams per user", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, withLimits(func(l *limit.Settings) { l.StreamsPerUser = 1 }))
		alice, gen := e.aliceWithGeneration(generation.Pending)
		stream := func() *http.Response { return openEventStream(t, e.URL, alice.Token, gen) }
		first := stream()
		defer first.Body.Close()
		if first.StatusCode != http.StatusOK {
			t.Fatalf("first stream: %d", first.StatusCode)
		}
		second := stream()
		second.Body.Close()
		if second.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("second stream: %d, want 429", second.StatusCode)
		}
		// Plain requests are counted apart from streams.
		apptest.PostTo(t, e.URL, alice.Token, `{ viewer { id } }`, nil).Decode(t, &map[string]any{})
	})
}
