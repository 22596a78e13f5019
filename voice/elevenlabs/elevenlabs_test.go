package elevenlabs

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/narrate/narrate/voice"
)

const testKey = "test-key"

// newTestClient starts an httptest server running handler behind a check of
// the API key header, and returns a client pointed at it.
func newTestClient(t *testing.T, handler http.HandlerFunc, mod ...func(*Config)) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("xi-api-key"); got != testKey {
			writeDetail(w, http.StatusUnauthorized, "invalid_api_key", "bad key "+got)
			return
		}
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	cfg := Config{APIKey: testKey, BaseURL: srv.URL + "/", HTTPClient: srv.Client()}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// hang drains the request body, so that the server notices when the client
// goes away, and then blocks until the request ends or release is closed.
func hang(r *http.Request, release <-chan struct{}) {
	_, _ = io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
	case <-release:
	}
}

func writeDetail(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"detail": map[string]string{"status": code, "message": msg}})
}

// newEndpointClient is newTestClient for one endpoint: a request for
// anything but method and path is answered 418, naming what it asked for;
// the others go to handler.
func newEndpointClient(t *testing.T, method, path string, handler http.HandlerFunc) *Client {
	t.Helper()
	return newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method || r.URL.Path != path {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusTeapot)
			return
		}
		handler(w, r)
	})
}

func TestNew(t *testing.T) {
	t.Parallel()
	if _, err := New(Config{}); err == nil {
		t.Error("New without API key succeeded")
	}
	if _, err := New(Config{APIKey: "k", BaseURL: "ftp://x"}); err == nil {
		t.Error("New with ftp base URL succeeded")
	}
	c, err := New(Config{APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if c.ChunkLimit() != 10_000 || c.Name() != "elevenlabs" {
		t.Errorf("defaults: limit %d name %q", c.ChunkLimit(), c.Name())
	}
	c, _ = New(Config{APIKey: "k", ModelID: "some_future_model"})
	if c.ChunkLimit() != 3_000 {
		t.Errorf("unknown model limit = %d, want the smallest documented, 3000", c.ChunkLimit())
	}
	c, _ = New(Config{APIKey: "k", ChunkLimit: 123})
	if c.ChunkLimit() != 123 {
		t.Errorf("configured limit = %d", c.ChunkLimit())
	}
}

func TestCloneVoice(t *testing.T) {
	t.Parallel()
	samples := []voice.File{
		{Name: "one.mp3", ContentType: "audio/mpeg", Data: []byte("first sample bytes")},
		{Name: `we"ird.wav`, ContentType: "audio/wav", Data: []byte("second")},
	}
	c := newEndpointClient(t, http.MethodPost, "/v1/voices/add", func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength <= 0 {
			http.Error(w, "no content length", http.StatusLengthRequired)
			return
		}
		mr, err := r.MultipartReader()
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var names []string
		var files []voice.File
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			data, _ := io.ReadAll(p)
			switch p.FormName() {
			case "name":
				names = append(names, string(data))
			case "files":
				files = append(files, voice.File{Name: p.FileName(), ContentType: p.Header.Get("Content-Type"), Data: data})
			default:
				http.Error(w, "unexpected part "+p.FormName(), http.StatusBadRequest)
				return
			}
		}
		if len(names) != 1 || names[0] != "Alice's voice" {
			http.Error(w, "bad name parts", http.StatusBadRequest)
			return
		}
		if len(files) != len(samples) {
			http.Error(w, "wrong file count", http.StatusBadRequest)
			return
		}
		for i, f := range files {
			if f.Name != samples[i].Name || f.ContentType != samples[i].ContentType || string(f.Data) != string(samples[i].Data) {
				http.Error(w, "file mismatch: "+f.Name, http.StatusBadRequest)
				return
			}
		}
		_, _ = io.WriteString(w, `{"voice_id":"v123","requires_verification":false}`)
	})
	clone, err := c.CloneVoice(t.Context(), "Alice's voice", samples)
	if err != nil {
		t.Fatal(err)
	}
	if clone != (voice.Clone{VoiceID: "v123"}) {
		t.Errorf("clone = %+v, want v123 needing no verification", clone)
	}
}

func TestSynthesize(t *testing.T) {
	t.Parallel()
	c := newEndpointClient(t, http.MethodPost, "/v1/text-to-speech/voice 1", func(w http.ResponseWriter, r *http.Request) {
		if got := r.URL.Query().Get("output_format"); got != "mp3_44100_128" {
			http.Error(w, "output_format "+got, http.StatusBadRequest)
			return
		}
		var body struct {
			Text     string   `json:"text"`
			ModelID  string   `json:"model_id"`
			Previous []string `json:"previous_request_ids"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if body.Text != "Once upon a time." || body.ModelID != DefaultModelID ||
			strings.Join(body.Previous, ",") != "r2,r3,r4" {
			http.Error(w, "unexpected body", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "audio/mpeg")
		w.Header().Set("request-id", "r5")
		_, _ = w.Write([]byte("ID3 fake mp3"))
	})
	audio, err := c.Synthesize(t.Context(), voice.SynthesisRequest{
		VoiceID:            "voice 1",
		Text:               "Once upon a time.",
		PreviousRequestIDs: []string{"r1", "r2", "r3", "r4"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if string(audio.Data) != "ID3 fake mp3" || audio.ContentType != "audio/mpeg" || audio.Extension != "mp3" || audio.RequestID != "r5" {
		t.Errorf("audio = %+v", audio)
	}
}

func TestSynthesizeRejectsLocally(t *testing.T) {
	t.Parallel()
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		t.Error("request sent for invalid input")
	}, func(cfg *Config) { cfg.ChunkLimit = 5 })
	for _, req := range []voice.SynthesisRequest{
		{VoiceID: "", Text: "hi"},
		{VoiceID: "v", Text: "  "},
		{VoiceID: "v", Text: "toolong"},
	} {
		_, err := c.Synthesize(t.Context(), req)
		if voice.KindOf(err) != voice.KindBadRequest {
			t.Errorf("Synthesize(%+v) = %v, want bad request", req, err)
		}
	}
}

func TestTranscribe(t *testing.T) {
	t.Parallel()
	c := newEndpointClient(t, http.MethodPost, "/v1/speech-to-text", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseMultipartForm(1 << 20); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if got := r.FormValue("model_id"); got != DefaultTranscriptionModelID {
			http.Error(w, "model_id "+got, http.StatusBadRequest)
			return
		}
		f, h, err := r.FormFile("file")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		data, _ := io.ReadAll(f)
		if string(data) != "recording" || h.Filename != "rec.webm" || h.Header.Get("Content-Type") != "audio/webm;codecs=opus" {
			http.Error(w, "file mismatch", http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, `{"language_code":"en","text":"copper garden river","words":[`+
			`{"text":"copper","type":"word"},{"text":" ","type":"spacing"},{"text":"garden","type":"word"},`+
			`{"text":" ","type":"spacing"},{"text":"river","type":"word"}]}`)
	})
	text, err := c.Transcribe(t.Context(), voice.File{Name: "rec.webm", ContentType: "audio/webm;codecs=opus", Data: []byte("recording")})
	if err != nil {
		t.Fatal(err)
	}
	if text != "copper garden river" {
		t.Errorf("text = %q", text)
	}
}

func TestDeleteVoice(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		status  int
		code    string
		wantErr voice.ErrorKind // KindOther means success
	}{
		{name: "deleted", status: http.StatusOK},
		{name: "already gone 404", status: http.StatusNotFound, code: "voice_not_found"},
		{name: "already gone 400", status: http.StatusBadRequest, code: "voice_not_found"},
		{name: "server error", status: http.StatusBadGateway, wantErr: voice.KindServer},
		{name: "unauthorized", status: http.StatusUnauthorized, code: "invalid_api_key", wantErr: voice.KindUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newEndpointClient(t, http.MethodDelete, "/v1/voices/v1", func(w http.ResponseWriter, r *http.Request) {
				if tt.status == http.StatusOK {
					_, _ = io.WriteString(w, `{"status":"ok"}`)
					return
				}
				writeDetail(w, tt.status, tt.code, "msg")
			})
			err := c.DeleteVoice(t.Context(), "v1")
			if tt.wantErr == voice.KindOther {
				if err != nil {
					t.Fatalf("DeleteVoice() = %v", err)
				}
				return
			}
			if got := voice.KindOf(err); got != tt.wantErr {
				t.Fatalf("DeleteVoice() = %v (kind %v), want kind %v", err, got, tt.wantErr)
			}
		})
	}
}

func TestErrorMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		status     int
		body       string
		retryAfter string
		kind       voice.ErrorKind
		code       string
		message    string
		retryable  bool
	}{
		{name: "concurrency", status: 429, body: `{"detail":{"status":"too_many_concurrent_requests","message":"slow down"}}`,
			retryAfter: "7", kind: voice.KindRateLimited, code: "too_many_concurrent_requests", message: "slow down", retryable: true},
		{name: "busy", status: 429, body: `{"detail":{"status":"system_busy","message":"busy"}}`,
			kind: voice.KindRateLimited, code: "system_busy", message: "busy", retryable: true},
		{name: "server", status: 500, body: `{"detail":"internal error"}`,
			kind: voice.KindServer, message: "internal error", retryable: true},
		{name: "gateway html", status: 503, body: `<html>down</html>`,
			kind: voice.KindServer, message: "<html>down</html>", retryable: true},
		{name: "voice 404", status: 404, body: `{"detail":{"status":"voice_not_found","message":"no voice"}}`,
			kind: voice.KindVoiceNotFound, code: "voice_not_found", message: "no voice"},
		{name: "voice 400", status: 400, body: `{"detail":{"status":"voice_not_found","message":"no voice"}}`,
			kind: voice.KindVoiceNotFound, code: "voice_not_found", message: "no voice"},
		{name: "quota", status: 401, body: `{"detail":{"status":"quota_exceeded","message":"no credits"}}`,
			kind: voice.KindQuota, code: "quota_exceeded", message: "no credits"},
		{name: "bad key", status: 401, body: `{"detail":{"status":"invalid_api_key","message":"nope"}}`,
			kind: voice.KindUnauthorized, code: "invalid_api_key", message: "nope"},
		{name: "validation list", status: 422,
			body: `{"detail":[{"loc":["body","text"],"msg":"field required","type":"value_error.missing"}]}`,
			kind: voice.KindBadRequest, code: "value_error.missing", message: "body.text: field required"},
		{name: "bad request", status: 400, body: `{"detail":{"status":"text_too_long","message":"too long"}}`,
			kind: voice.KindBadRequest, code: "text_too_long", message: "too long"},
		{name: "empty body", status: 403, body: ``, kind: voice.KindBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			})
			_, err := c.Synthesize(t.Context(), voice.SynthesisRequest{VoiceID: "v", Text: "hello"})
			var ve *voice.Error
			if !errors.As(err, &ve) {
				t.Fatalf("Synthesize() = %v, want *voice.Error", err)
			}
			if ve.Kind != tt.kind || ve.Status != tt.status || ve.Code != tt.code || ve.Message != tt.message {
				t.Errorf("error = %+v, want kind %v status %d code %q message %q", ve, tt.kind, tt.status, tt.code, tt.message)
			}
			if got := voice.IsRetryable(err); got != tt.retryable {
				t.Errorf("IsRetryable() = %v, want %v", got, tt.retryable)
			}
			if tt.retryAfter == "7" && ve.RetryAfter != 7*time.Second {
				t.Errorf("RetryAfter = %v", ve.RetryAfter)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("error leaks the API key: %v", err)
			}
		})
	}
}

func TestNetworkError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	c, err := New(Config{APIKey: testKey, BaseURL: url})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Synthesize(t.Context(), voice.SynthesisRequest{VoiceID: "v", Text: "hello"})
	if voice.KindOf(err) != voice.KindNetwork || !voice.IsRetryable(err) {
		t.Fatalf("Synthesize() = %v, want retryable network error", err)
	}
}

func TestRequestTimeoutIsNetworkError(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		hang(r, release)
	}, func(cfg *Config) { cfg.Timeout = 50 * time.Millisecond })
	defer close(release)
	_, err := c.Transcribe(t.Context(), voice.File{Name: "a.wav", ContentType: "audio/wav", Data: []byte("x")})
	if voice.KindOf(err) != voice.KindNetwork || !voice.IsRetryable(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Transcribe() = %v, want retryable network timeout", err)
	}
}

func TestContextCancel(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	release := make(chan struct{})
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		hang(r, release)
	})
	t.Cleanup(func() { close(release) })
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-started
		cancel()
	}()
	_, err := c.Synthesize(ctx, voice.SynthesisRequest{VoiceID: "v", Text: "hello"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Synthesize() = %v, want context.Canceled", err)
	}
	if voice.IsRetryable(err) {
		t.Error("a canceled request is retryable")
	}
}

func TestConcurrencyLimit(t *testing.T) {
	t.Parallel()
	const calls = 3
	var inflight, maxInflight atomic.Int32
	entered := make(chan struct{}, calls)
	release := make(chan struct{})
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for m := maxInflight.Load(); n > m && !maxInflight.CompareAndSwap(m, n); m = maxInflight.Load() {
		}
		entered <- struct{}{}
		<-release
		_, _ = w.Write([]byte("audio"))
	}, func(cfg *Config) { cfg.MaxConcurrent = 1 })

	errs := make(chan error, calls)
	for range calls {
		go func() {
			_, err := c.Synthesize(t.Context(), voice.SynthesisRequest{VoiceID: "v", Text: "hello"})
			errs <- err
		}()
	}
	<-entered
	// The only slot is taken, so a call whose context is already canceled
	// must give up waiting instead of sending a request.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Synthesize(ctx, voice.SynthesisRequest{VoiceID: "v", Text: "hello"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Synthesize while full = %v, want context.Canceled", err)
	}
	close(release)
	for range calls {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if m := maxInflight.Load(); m != 1 {
		t.Errorf("%d requests ran at once with MaxConcurrent 1", m)
	}
}
