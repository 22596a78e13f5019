package elevenlabs

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/narrate/narrate/voice"
)

// The tests in this file run the client against docFake, a fake that
// behaves the way ElevenLabs documents its API, where the behaviour
// differs from what a naive client assumes.

// documentedLimits are the per-request text limits ElevenLabs documents
// for its text-to-speech models, written out here rather than read from
// the client so that the test checks the client against the documentation.
var documentedLimits = map[string]int{
	"eleven_v3": 3_000, "eleven_multilingual_v2": 10_000,
	"eleven_flash_v2_5": 40_000, "eleven_turbo_v2_5": 40_000,
	"eleven_flash_v2": 30_000, "eleven_turbo_v2": 30_000,
}

// docFake answers text to speech, speech to text and voices/add as the
// documentation describes: text over the model's limit is a 400, more than
// three previous_request_ids is a 400, and so is any for eleven_v3 (which
// has no request stitching); speech to text tags audio events unless
// tag_audio_events is false; voices/add answers requires_verification.
type docFake struct {
	mu sync.Mutex
	// requiresVerification is what voices/add answers.
	requiresVerification bool
	// stitched are the previous_request_ids of each accepted synthesis.
	stitched [][]string
	// tagged records the tag_audio_events field of each transcription,
	// "" when it was not sent.
	tagged []string
}

func (f *docFake) handle(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v1/text-to-speech/"):
		f.textToSpeech(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/speech-to-text":
		f.speechToText(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/voices/add":
		f.mu.Lock()
		defer f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"voice_id": "v1", "requires_verification": f.requiresVerification})
	default:
		http.NotFound(w, r)
	}
}

func (f *docFake) textToSpeech(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Text     string   `json:"text"`
		ModelID  string   `json:"model_id"`
		Previous []string `json:"previous_request_ids"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeDetail(w, http.StatusBadRequest, "invalid_json", err.Error())
		return
	}
	limit, ok := documentedLimits[body.ModelID]
	switch {
	case !ok:
		writeDetail(w, http.StatusBadRequest, "model_not_found", "unknown model "+body.ModelID)
		return
	case utf8.RuneCountInString(body.Text) > limit:
		writeDetail(w, http.StatusBadRequest, "text_too_long", fmt.Sprintf("text longer than %d characters", limit))
		return
	case body.ModelID == "eleven_v3" && len(body.Previous) > 0:
		writeDetail(w, http.StatusBadRequest, "unsupported_model", "request stitching is not available for eleven_v3")
		return
	case len(body.Previous) > 3:
		writeDetail(w, http.StatusBadRequest, "too_many_previous_request_ids", "a maximum of 3 request_ids can be sent")
		return
	}
	f.mu.Lock()
	f.stitched = append(f.stitched, body.Previous)
	n := len(f.stitched)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "audio/mpeg")
	w.Header().Set("request-id", fmt.Sprintf("req-%d", n))
	_, _ = w.Write([]byte("mp3 frames"))
}

func (f *docFake) speechToText(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseMultipartForm(1 << 20); err != nil {
		writeDetail(w, http.StatusBadRequest, "invalid_form", err.Error())
		return
	}
	tag := r.FormValue("tag_audio_events")
	f.mu.Lock()
	f.tagged = append(f.tagged, tag)
	f.mu.Unlock()
	type word struct{ Text, Type string }
	words := []word{{"copper", "word"}, {" ", "spacing"}, {"garden", "word"}, {" ", "spacing"}, {"river", "word"}}
	// tag_audio_events defaults to true: the background noise of a real
	// recording then leads the transcript.
	if tag == "" || tag == "true" {
		words = append([]word{{"(background noise)", "audio_event"}, {" ", "spacing"}}, words...)
	}
	var text strings.Builder
	out := make([]map[string]string, len(words))
	for i, wd := range words {
		text.WriteString(wd.Text)
		out[i] = map[string]string{"text": wd.Text, "type": wd.Type}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"text": text.String(), "words": out})
}

func newDocClient(t *testing.T, f *docFake, model string) *Client {
	t.Helper()
	return newTestClient(t, f.handle, func(c *Config) { c.ModelID = model })
}

func TestDocumentedModelLimits(t *testing.T) {
	t.Parallel()
	for model, limit := range documentedLimits {
		t.Run(model, func(t *testing.T) {
			t.Parallel()
			c := newDocClient(t, &docFake{}, model)
			if c.ChunkLimit() != limit {
				t.Fatalf("ChunkLimit() = %d, want %d", c.ChunkLimit(), limit)
			}
			// A chunk of exactly the limit is accepted by the service.
			if _, err := c.Synthesize(t.Context(), voice.SynthesisRequest{VoiceID: "v", Text: strings.Repeat("a", limit)}); err != nil {
				t.Fatalf("Synthesize(%d characters) = %v", limit, err)
			}
		})
	}
}

func TestStitchingFollowsTheModel(t *testing.T) {
	t.Parallel()
	previous := []string{"r1", "r2", "r3", "r4", "r5"}
	tests := []struct {
		model string
		want  string
	}{
		{model: "eleven_v3", want: ""},
		{model: "eleven_multilingual_v2", want: "r3,r4,r5"},
		{model: "eleven_flash_v2_5", want: "r3,r4,r5"},
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			t.Parallel()
			f := &docFake{}
			c := newDocClient(t, f, tt.model)
			for n := range previous {
				_, err := c.Synthesize(t.Context(), voice.SynthesisRequest{VoiceID: "v", Text: "Once.", PreviousRequestIDs: previous[:n+1]})
				if err != nil {
					t.Fatalf("Synthesize with %d previous ids = %v", n+1, err)
				}
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if got := strings.Join(f.stitched[len(f.stitched)-1], ","); got != tt.want {
				t.Errorf("previous_request_ids sent = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTranscribeLeavesAudioEventsOut(t *testing.T) {
	t.Parallel()
	f := &docFake{}
	c := newDocClient(t, f, DefaultModelID)
	text, err := c.Transcribe(t.Context(), voice.File{Name: "rec.webm", ContentType: "audio/webm", Data: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if text != "copper garden river" {
		t.Errorf("transcript = %q, want the words alone", text)
	}
	if ok, detail := voice.MatchPhrase("Copper garden river.", text); !ok {
		t.Errorf("phrase check rejects the transcript: %s", detail)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.tagged) != 1 || f.tagged[0] != "false" {
		t.Errorf("tag_audio_events sent = %q, want \"false\"", f.tagged)
	}
}

func TestTranscriptKeepsOnlyWords(t *testing.T) {
	t.Parallel()
	// A model that tags events anyway: only the words count.
	var tr transcript
	body := `{"text":"(laughter) copper garden","words":[{"text":"(laughter)","type":"audio_event"},{"text":" ","type":"spacing"},` +
		`{"text":"copper","type":"word"},{"text":" ","type":"spacing"},{"text":"garden","type":"word"}]}`
	if err := json.Unmarshal([]byte(body), &tr); err != nil {
		t.Fatal(err)
	}
	if got := tr.spoken(); got != "copper garden" {
		t.Errorf("spoken() = %q", got)
	}
	tr = transcript{Text: "no word list"}
	if got := tr.spoken(); got != "no word list" {
		t.Errorf("spoken() without words = %q", got)
	}
}

func TestCloneVoiceRequiresVerification(t *testing.T) {
	t.Parallel()
	for _, required := range []bool{false, true} {
		t.Run(fmt.Sprint(required), func(t *testing.T) {
			t.Parallel()
			c := newDocClient(t, &docFake{requiresVerification: required}, DefaultModelID)
			clone, err := c.CloneVoice(t.Context(), "me", []voice.File{{Name: "a.mp3", ContentType: "audio/mpeg", Data: []byte("x")}})
			if err != nil {
				t.Fatal(err)
			}
			if clone.VoiceID != "v1" || clone.RequiresVerification != required {
				t.Errorf("clone = %+v, want v1 with RequiresVerification %v", clone, required)
			}
		})
	}
}
