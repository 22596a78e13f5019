package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/narrate/narrate/app"
	"github.com/narrate/narrate/graph"
	"github.com/narrate/narrate/voice"
	"github.com/narrate/narrate/voice/elevenlabs"
	"github.com/narrate/narrate/voice/local"
)

// fakeAPIKey is the key the fake ElevenLabs server expects.
const fakeAPIKey = "test-xi-key"

// fakeFile is a file the fake ElevenLabs server received.
type fakeFile struct {
	Name        string
	ContentType string
	Data        []byte
}

// fakeVoice is a voice cloned at the fake ElevenLabs server.
type fakeVoice struct {
	Name  string
	Files []fakeFile
}

// fakeElevenLabs is an httptest server speaking the documented shapes and
// behaviour of the three ElevenLabs endpoints the voice-sample mutations
// use: speech to text tags audio events unless told not to, and voices/add
// answers requires_verification.
type fakeElevenLabs struct {
	t   testing.TB
	URL string

	mu          sync.Mutex
	next        int
	voices      map[string]fakeVoice
	clones      []string // voice ids in creation order
	deleted     []string
	transcripts []fakeFile // recordings sent to speech to text
	transcript  string     // what speech to text hears
	// noise, when set, is an audio event speech to text hears before the
	// words, as in a real recording, e.g. "(background noise)".
	noise string
	// requiresVerification is what voices/add answers.
	requiresVerification bool
	// cloneFailure, when set, answers POST /v1/voices/add with this status
	// and ElevenLabs error code.
	cloneFailure *fakeFailure
}

// fakeFailure is an error response of the fake server.
type fakeFailure struct {
	Status int
	Code   string
}

func newFakeElevenLabs(t testing.TB) *fakeElevenLabs {
	t.Helper()
	f := &fakeElevenLabs{t: t, voices: map[string]fakeVoice{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/voices/add", f.addVoice)
	mux.HandleFunc("POST /v1/speech-to-text", f.speechToText)
	mux.HandleFunc("DELETE /v1/voices/{id}", f.deleteVoice)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("xi-api-key") != fakeAPIKey {
			writeDetail(w, http.StatusUnauthorized, "invalid_api_key", "Invalid API key")
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// provider returns the real ElevenLabs client pointed at the fake.
func (f *fakeElevenLabs) provider() app.Voice {
	f.t.Helper()
	c, err := elevenlabs.New(elevenlabs.Config{APIKey: fakeAPIKey, BaseURL: f.URL})
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func writeDetail(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"detail": map[string]string{"status": code, "message": message}})
}

// readParts reads a multipart request into its text fields and files, in
// the order they were sent.
func readParts(r *http.Request) (map[string]string, map[string][]fakeFile, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, nil, err
	}
	fields := map[string]string{}
	files := map[string][]fakeFile{}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return fields, files, nil
		}
		if err != nil {
			return nil, nil, err
		}
		data, err := io.ReadAll(p)
		if err != nil {
			return nil, nil, err
		}
		if p.FileName() == "" {
			fields[p.FormName()] = string(data)
			continue
		}
		files[p.FormName()] = append(files[p.FormName()], fakeFile{Name: p.FileName(), ContentType: p.Header.Get("Content-Type"), Data: data})
	}
}

func (f *fakeElevenLabs) addVoice(w http.ResponseWriter, r *http.Request) {
	fields, files, err := readParts(r)
	if err != nil {
		writeDetail(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cloneFailure != nil {
		writeDetail(w, f.cloneFailure.Status, f.cloneFailure.Code, "the fake says no")
		return
	}
	if fields["name"] == "" || len(files["files"]) == 0 {
		writeDetail(w, http.StatusUnprocessableEntity, "invalid_request", "name and files are required")
		return
	}
	f.next++
	id := fmt.Sprintf("fake-voice-%d", f.next)
	f.voices[id] = fakeVoice{Name: fields["name"], Files: files["files"]}
	f.clones = append(f.clones, id)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"voice_id": id, "requires_verification": f.requiresVerification})
}

func (f *fakeElevenLabs) speechToText(w http.ResponseWriter, r *http.Request) {
	fields, files, err := readParts(r)
	if err != nil || fields["model_id"] == "" || len(files["file"]) != 1 {
		writeDetail(w, http.StatusUnprocessableEntity, "invalid_request", "model_id and one file are required")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.transcripts = append(f.transcripts, files["file"][0])
	// Words are listed with the spacing between them; audio events are
	// tagged, in the text and as words of their own, unless
	// tag_audio_events is false (it defaults to true).
	var words []map[string]string
	if f.noise != "" && fields["tag_audio_events"] != "false" {
		words = append(words, map[string]string{"text": f.noise, "type": "audio_event"}, map[string]string{"text": " ", "type": "spacing"})
	}
	for i, word := range strings.Fields(f.transcript) {
		if i > 0 {
			words = append(words, map[string]string{"text": " ", "type": "spacing"})
		}
		words = append(words, map[string]string{"text": word, "type": "word"})
	}
	var text strings.Builder
	for _, w := range words {
		text.WriteString(w["text"])
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"text": text.String(), "words": words})
}

func (f *fakeElevenLabs) deleteVoice(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.voices[id]; !ok {
		writeDetail(w, http.StatusNotFound, "voice_not_found", "A voice with the voice_id "+id+" was not found.")
		return
	}
	delete(f.voices, id)
	f.deleted = append(f.deleted, id)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ok"}`))
}

// fakeState is a copy of what the fake ElevenLabs server holds.
type fakeState struct {
	// Voices are the voices it holds by id.
	Voices map[string]fakeVoice
	// Clones and Deleted are voice ids in the order they were cloned and
	// deleted.
	Clones, Deleted []string
	// Transcripts are the recordings sent to speech to text.
	Transcripts []fakeFile
}

// state returns a copy of what the fake holds.
func (f *fakeElevenLabs) state() fakeState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fakeState{
		Voices:      maps.Clone(f.voices),
		Clones:      slices.Clone(f.clones),
		Deleted:     slices.Clone(f.deleted),
		Transcripts: slices.Clone(f.transcripts),
	}
}

func (f *fakeElevenLabs) setTranscript(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.transcript = s
}

// hearNoise makes speech to text hear an audio event before the words.
func (f *fakeElevenLabs) hearNoise(event string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.noise = event
}

// holdVoices makes voices/add answer requires_verification: true.
func (f *fakeElevenLabs) holdVoices() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requiresVerification = true
}

func (f *fakeElevenLabs) failClones(fail *fakeFailure) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cloneFailure = fail
}

// newFakeVoiceEnv starts a server whose voice-sample mutations use the real
// ElevenLabs client against a fake ElevenLabs, with Alice signed up.
func newFakeVoiceEnv(t testing.TB) (*fakeElevenLabs, *env, user) {
	t.Helper()
	fake := newFakeElevenLabs(t)
	e := newEnv(t, withVoice(fake.provider()))
	return fake, e, e.NewUser("alice@example.com", false)
}

// upload is a file of a multipart GraphQL request.
type upload struct {
	Name        string
	ContentType string
	Data        []byte
}

// audio returns a small upload of the given content type, whose bytes
// begin the way a file of that format does (the server checks them), and
// are otherwise made up. Other types get bytes of no audio format.
func audio(name, contentType string) upload {
	return upload{Name: name, ContentType: contentType, Data: append(audioHeader(contentType), "fake audio of "+name...)}
}

// audioHeader is the start of a file of the content type's format.
func audioHeader(contentType string) []byte {
	mediaType, _, _ := strings.Cut(contentType, ";")
	switch mediaType {
	case "audio/mpeg", "audio/mp3":
		return []byte("ID3\x04\x00\x00\x00\x00\x00\x0aTIT2\x00\x00\x00\x01\x00\x00")
	case "audio/wav", "audio/x-wav", "audio/wave":
		return []byte("RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00")
	case "audio/webm":
		return []byte("\x1A\x45\xDF\xA3\x9F\x42\x86\x81\x01\x42\xF7\x81\x01\x42\xF2\x81\x04\x42\xF3\x81\x08\x42\x82\x84webm\x42\x87\x81\x04")
	case "audio/ogg":
		return []byte("OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x13OpusHead")
	}
	return []byte("not audio: ")
}

// sized is a WAV upload of exactly n bytes.
func sized(name string, n int) upload {
	data := make([]byte, n)
	copy(data, audioHeader("audio/wav"))
	return upload{Name: name, ContentType: "audio/wav", Data: data}
}

// postMultipart sends a GraphQL multipart request
// (https://github.com/jaydenseric/graphql-multipart-request-spec): an
// "operations" part with the query and variables, whose file positions vars
// holds as null; a "map" part naming each file's variable path; then the
// files, one part each, in the map's order.
func (e *env) postMultipart(token, query string, vars map[string]any, paths []string, files []upload) response {
	e.t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	ops, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	fileMap := map[string][]string{}
	for i, p := range paths {
		fileMap[fmt.Sprint(i)] = []string{p}
	}
	m, _ := json.Marshal(fileMap)
	if err := w.WriteField("operations", string(ops)); err != nil {
		e.t.Fatal(err)
	}
	if err := w.WriteField("map", string(m)); err != nil {
		e.t.Fatal(err)
	}
	for i, f := range files {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="%d"; filename="%s"`, i, f.Name))
		h.Set("Content-Type", f.ContentType)
		part, err := w.CreatePart(h)
		if err != nil {
			e.t.Fatal(err)
		}
		if _, err := part.Write(f.Data); err != nil {
			e.t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		e.t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, e.URL+"/graphql", &body)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", w.FormDataContentType())
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return e.Send(req)
}

const sampleFields = `id elevenlabsVoiceId verificationPhrase verified providerVerificationRequired createdAt`

const createSampleMutation = `mutation($input: CreateVoiceSampleInput!) {
  createVoiceSample(input: $input) { ` + sampleFields + ` } }`

const verifySampleMutation = `mutation($recording: Upload!) {
  verifyVoiceSample(recording: $recording) { ` + sampleFields + ` } }`

// sampleJSON is a VoiceSample as the API returns it.
type sampleJSON struct {
	ID                 string `json:"id"`
	ElevenlabsVoiceID  string `json:"elevenlabsVoiceId"`
	VerificationPhrase string `json:"verificationPhrase"`
	Verified           bool   `json:"verified"`
	// ProviderVerificationRequired is ElevenLabs' requires_verification.
	ProviderVerificationRequired bool   `json:"providerVerificationRequired"`
	CreatedAt                    string `json:"createdAt"`
}

// createSample sends createVoiceSample with files; name "" leaves the
// voice name to the server.
func (e *env) createSample(token, name string, files ...upload) response {
	e.t.Helper()
	samples := make([]any, len(files))
	paths := make([]string, len(files))
	for i := range files {
		paths[i] = fmt.Sprintf("variables.input.samples.%d", i)
	}
	input := map[string]any{"samples": samples}
	if name != "" {
		input["name"] = name
	}
	return e.postMultipart(token, createSampleMutation, map[string]any{"input": input}, paths, files)
}

// mustCreateSample creates a voice sample and returns it.
func (e *env) mustCreateSample(token string, files ...upload) sampleJSON {
	e.t.Helper()
	var out struct{ CreateVoiceSample sampleJSON }
	e.createSample(token, "", files...).Decode(e.t, &out)
	return out.CreateVoiceSample
}

// verifySample sends verifyVoiceSample with a recording.
func (e *env) verifySample(token string, recording upload) response {
	e.t.Helper()
	return e.postMultipart(token, verifySampleMutation, map[string]any{"recording": nil},
		[]string{"variables.recording"}, []upload{recording})
}

// dbSample is what the database holds about a user's voice sample.
type dbSample struct {
	Count    int
	VoiceID  string
	Phrase   string
	Verified bool
}

func (e *env) dbSample(u user) dbSample {
	e.t.Helper()
	var s dbSample
	e.Scan(`SELECT count(*), coalesce(max(elevenlabs_voice_id), ''), coalesce(max(verification_phrase), ''), coalesce(bool_or(verified), false)
		FROM voice_samples WHERE user_id = $1`, []any{u.ID}, &s.Count, &s.VoiceID, &s.Phrase, &s.Verified)
	return s
}

// wantSampleStored checks that the database holds sample as u's only one,
// unverified.
func (e *env) wantSampleStored(t testing.TB, u user, sample sampleJSON) {
	t.Helper()
	want := dbSample{Count: 1, VoiceID: sample.ElevenlabsVoiceID, Phrase: sample.VerificationPhrase}
	if s := e.dbSample(u); s != want {
		t.Errorf("database holds %+v, want %+v", s, want)
	}
}

func TestCreateVoiceSampleClonesEveryFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		voice    string
		wantName string
	}{
		{name: "default name", wantName: "alice@example.com's voice"},
		{name: "chosen name", voice: "Storytime Alice", wantName: "Storytime Alice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake, e, alice := newFakeVoiceEnv(t)
			files := []upload{
				audio("one.mp3", "audio/mpeg"),
				audio("two.webm", "audio/webm;codecs=opus"),
				audio("three.wav", "audio/wav"),
			}

			var out struct{ CreateVoiceSample sampleJSON }
			e.createSample(alice.Token, tt.voice, files...).Decode(t, &out)
			got := out.CreateVoiceSample

			st := fake.state()
			if len(st.Clones) != 1 || got.ElevenlabsVoiceID != st.Clones[0] {
				t.Fatalf("elevenlabsVoiceId = %q, provider cloned %q", got.ElevenlabsVoiceID, st.Clones)
			}
			cloned := st.Voices[st.Clones[0]]
			if cloned.Name != tt.wantName {
				t.Errorf("voice name = %q, want %q", cloned.Name, tt.wantName)
			}
			if len(cloned.Files) != len(files) {
				t.Fatalf("provider got %d files, want %d", len(cloned.Files), len(files))
			}
			for i, f := range files {
				g := cloned.Files[i]
				if g.Name != f.Name || g.ContentType != f.ContentType || !bytes.Equal(g.Data, f.Data) {
					t.Errorf("file %d at provider = %q %q %q, want %q %q %q", i, g.Name, g.ContentType, g.Data, f.Name, f.ContentType, f.Data)
				}
			}
			if got.Verified {
				t.Error("a new sample is verified")
			}
			if words := strings.Fields(got.VerificationPhrase); len(words) != voice.PhraseWords {
				t.Errorf("verificationPhrase = %q, want %d words", got.VerificationPhrase, voice.PhraseWords)
			}
			e.wantSampleStored(t, alice, got)
		})
	}
}

func TestCreateVoiceSampleReplacesEarlier(t *testing.T) {
	t.Parallel()
	fake, e, alice := newFakeVoiceEnv(t)

	first := e.mustCreateSample(alice.Token, audio("a.mp3", "audio/mpeg"))
	// Verify the first, to see that the replacement starts unverified again.
	fake.setTranscript(first.VerificationPhrase)
	e.verifySample(alice.Token, audio("phrase.webm", "audio/webm")).Decode(t, &struct{}{})
	second := e.mustCreateSample(alice.Token, audio("b.mp3", "audio/mpeg"))

	if second.ID == first.ID || second.ElevenlabsVoiceID == first.ElevenlabsVoiceID {
		t.Fatalf("replacement %+v is the same sample as %+v", second, first)
	}
	if second.VerificationPhrase == first.VerificationPhrase {
		t.Errorf("replacement kept the phrase %q", first.VerificationPhrase)
	}
	st := fake.state()
	if !slices.Equal(st.Deleted, []string{first.ElevenlabsVoiceID}) {
		t.Errorf("provider deleted %q, want the earlier voice %q", st.Deleted, first.ElevenlabsVoiceID)
	}
	if _, ok := st.Voices[second.ElevenlabsVoiceID]; !ok || len(st.Voices) != 1 {
		t.Errorf("provider holds %v, want only %q", st.Voices, second.ElevenlabsVoiceID)
	}
	e.wantSampleStored(t, alice, second)
}

func TestCreateVoiceSampleRejectsBadUploads(t *testing.T) {
	t.Parallel()
	many := make([]upload, voice.MaxSamples+1)
	for i := range many {
		many[i] = audio(fmt.Sprintf("%d.mp3", i), "audio/mpeg")
	}
	tests := []struct {
		name    string
		files   []upload
		message string
	}{
		{name: "no files", files: nil, message: "1 to 25 files"},
		{name: "too many files", files: many, message: "1 to 25 files"},
		{name: "not audio", files: []upload{audio("a.mp3", "audio/mpeg"), audio("notes.txt", "text/plain")}, message: "unsupported content type"},
		{name: "declared audio, bytes not", files: []upload{{Name: "a.mp3", ContentType: "audio/mpeg", Data: []byte("<html><script>alert(1)</script>")}}, message: "content is not MP3, WAV, WebM, Ogg or MP4 audio"},
		{name: "unlisted audio type", files: []upload{audio("a.flac", "audio/flac")}, message: "unsupported content type"},
		{name: "empty file", files: []upload{{Name: "silence.mp3", ContentType: "audio/mpeg"}}, message: "empty file"},
		{name: "over 10 MB", files: []upload{sized("long.wav", voice.MaxUploadBytes+1)}, message: "larger than 10 MB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake, e, alice := newFakeVoiceEnv(t)

			e.createSample(alice.Token, "", tt.files...).WantError(t, graph.CodeBadUserInput, tt.message)
			if clones := fake.state().Clones; len(clones) != 0 {
				t.Errorf("provider cloned %q from a refused upload", clones)
			}
			if s := e.dbSample(alice); s.Count != 0 {
				t.Errorf("database holds %+v after a refused upload", s)
			}
		})
	}
}

func TestCreateVoiceSampleAcceptsLargestFile(t *testing.T) {
	t.Parallel()
	fake, e, alice := newFakeVoiceEnv(t)

	got := e.mustCreateSample(alice.Token, sized("long.wav", voice.MaxUploadBytes))
	if files := fake.state().Voices[got.ElevenlabsVoiceID].Files; len(files) != 1 || len(files[0].Data) != voice.MaxUploadBytes {
		t.Fatalf("provider got %d files, want one of %d bytes", len(files), voice.MaxUploadBytes)
	}
}

func TestCreateVoiceSampleProviderErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		failure fakeFailure
		code    string
		message string
	}{
		{name: "rate limited", failure: fakeFailure{Status: http.StatusTooManyRequests, Code: "too_many_concurrent_requests"}, code: graph.CodeRateLimited, message: "try again"},
		{name: "bad request", failure: fakeFailure{Status: http.StatusBadRequest, Code: "invalid_audio"}, code: graph.CodeBadUserInput, message: "the fake says no"},
		{name: "server error", failure: fakeFailure{Status: http.StatusInternalServerError, Code: "internal"}, code: graph.CodeInternal, message: "internal server error"},
		{name: "quota", failure: fakeFailure{Status: http.StatusUnauthorized, Code: "quota_exceeded"}, code: graph.CodeInternal, message: "internal server error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake, e, alice := newFakeVoiceEnv(t)
			fake.failClones(&tt.failure)

			e.createSample(alice.Token, "", audio("a.mp3", "audio/mpeg")).WantError(t, tt.code, tt.message)
			if s := e.dbSample(alice); s.Count != 0 {
				t.Errorf("database holds %+v after the provider failed", s)
			}
		})
	}
}

func TestCreateVoiceSampleDeletesNewVoiceWhenNotStored(t *testing.T) {
	t.Parallel()
	fake, e, alice := newFakeVoiceEnv(t)
	earlier := e.mustCreateSample(alice.Token, audio("a.mp3", "audio/mpeg"))

	// Make the database refuse the next sample, as an outage mid-request
	// would.
	e.Exec(`CREATE FUNCTION refuse_voice_sample() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'refused by test'; END $$`)
	e.Exec(`CREATE TRIGGER refuse BEFORE INSERT ON voice_samples FOR EACH ROW EXECUTE FUNCTION refuse_voice_sample()`)

	res := e.createSample(alice.Token, "", audio("b.mp3", "audio/mpeg"))
	res.WantCode(t, graph.CodeInternal)
	if strings.Contains(string(res.Raw), "refused by test") {
		t.Errorf("the database error leaked to the client: %s", res.Raw)
	}

	st := fake.state()
	if len(st.Clones) != 2 {
		t.Fatalf("provider cloned %q, want two voices", st.Clones)
	}
	if !slices.Equal(st.Deleted, []string{st.Clones[1]}) {
		t.Errorf("provider deleted %q, want only the unstored new voice %q", st.Deleted, st.Clones[1])
	}
	if _, ok := st.Voices[earlier.ElevenlabsVoiceID]; !ok {
		t.Errorf("the earlier voice %q was deleted at the provider", earlier.ElevenlabsVoiceID)
	}
	e.wantSampleStored(t, alice, earlier)
}

func TestVerifyVoiceSample(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// heard makes the transcript from the phrase's words.
		heard    func(words []string) string
		verified bool
		message  string
	}{
		{name: "exact", heard: func(w []string) string { return strings.Join(w, " ") }, verified: true},
		{name: "case and punctuation", heard: func(w []string) string {
			return strings.ToUpper(w[0]) + ", " + w[1] + "! " + strings.ToUpper(w[2][:1]) + w[2][1:] + "... " + w[3] + "? \"" + w[4] + "\" - " + w[5] + "."
		}, verified: true},
		{name: "one word of six wrong", heard: func(w []string) string {
			return strings.Join(append([]string{"elephant"}, w[1:]...), " ")
		}, verified: true},
		{name: "two words wrong", heard: func(w []string) string {
			return strings.Join(append([]string{"elephant", "giraffe"}, w[2:]...), " ")
		}, message: `heard "elephant" instead of`},
		{name: "half the phrase", heard: func(w []string) string { return strings.Join(w[:3], " ") }, message: "missed"},
		{name: "silence", heard: func([]string) string { return "" }, message: "no words were recognised"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake, e, alice := newFakeVoiceEnv(t)
			sample := e.mustCreateSample(alice.Token, audio("a.mp3", "audio/mpeg"))
			fake.setTranscript(tt.heard(strings.Fields(sample.VerificationPhrase)))
			recording := audio("phrase.webm", "audio/webm;codecs=opus")

			res := e.verifySample(alice.Token, recording)
			if tt.verified {
				var out struct{ VerifyVoiceSample sampleJSON }
				res.Decode(t, &out)
				if got := out.VerifyVoiceSample; !got.Verified || got.ID != sample.ID {
					t.Errorf("verifyVoiceSample = %+v, want sample %s verified", got, sample.ID)
				}
			} else {
				res.WantError(t, graph.CodeBadUserInput, "does not match")
				res.WantError(t, graph.CodeBadUserInput, tt.message)
			}
			if s := e.dbSample(alice); s.Verified != tt.verified {
				t.Errorf("database verified = %v, want %v", s.Verified, tt.verified)
			}
			transcribed := fake.state().Transcripts
			if len(transcribed) != 1 || !bytes.Equal(transcribed[0].Data, recording.Data) || transcribed[0].ContentType != recording.ContentType {
				t.Errorf("provider transcribed %+v, want the recording", transcribed)
			}
		})
	}
}

func TestVerifyVoiceSampleRejectsBadRecordings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		recording upload
		message   string
	}{
		{name: "not audio", recording: audio("phrase.png", "image/png"), message: "unsupported content type"},
		{name: "empty", recording: upload{Name: "phrase.webm", ContentType: "audio/webm"}, message: "empty file"},
		{name: "over 10 MB", recording: sized("phrase.wav", voice.MaxUploadBytes+1), message: "larger than 10 MB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake, e, alice := newFakeVoiceEnv(t)
			sample := e.mustCreateSample(alice.Token, audio("a.mp3", "audio/mpeg"))
			fake.setTranscript(sample.VerificationPhrase)

			e.verifySample(alice.Token, tt.recording).WantError(t, graph.CodeBadUserInput, tt.message)
			if len(fake.state().Transcripts) != 0 {
				t.Errorf("provider transcribed a refused recording")
			}
			if s := e.dbSample(alice); s.Verified {
				t.Error("a refused recording verified the sample")
			}
		})
	}
}

func TestVerifyVoiceSampleWithLocalProvider(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withVoice(local.New(local.Config{EspeakPath: "-"})))
	alice := e.NewUser("alice@example.com", false)
	e.mustCreateSample(alice.Token, audio("a.mp3", "audio/mpeg"))

	// The local provider cannot transcribe, so it accepts any recording,
	// but still not an empty one.
	e.verifySample(alice.Token, upload{Name: "phrase.webm", ContentType: "audio/webm"}).WantCode(t, graph.CodeBadUserInput)
	if s := e.dbSample(alice); s.Verified {
		t.Fatal("an empty recording verified the sample")
	}
	var out struct{ VerifyVoiceSample sampleJSON }
	e.verifySample(alice.Token, audio("anything.webm", "audio/webm")).Decode(t, &out)
	if !out.VerifyVoiceSample.Verified {
		t.Error("the local provider did not accept a recording")
	}
	if s := e.dbSample(alice); !s.Verified {
		t.Error("the database does not hold the sample verified")
	}
}

// TestVoiceOperationsWithoutProvider: a production server started without
// ELEVENLABS_API_KEY (config's VoiceNone) serves everything else and
// refuses cloning, verification and deletion with NOT_IMPLEMENTED and a
// message saying what to configure, never falling back to a provider that
// accepts any recording.
func TestVoiceOperationsWithoutProvider(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withVoice(voice.Unconfigured{}))
	alice := e.NewUser("alice@example.com", false)

	e.createSample(alice.Token, "", audio("a.mp3", "audio/mpeg")).WantError(t, graph.CodeNotImplemented, "ELEVENLABS_API_KEY")
	e.Exec(`INSERT INTO voice_samples (user_id, elevenlabs_voice_id, verification_phrase) VALUES ($1, 'v-1', 'a b c')`, alice.ID)
	e.verifySample(alice.Token, audio("phrase.webm", "audio/webm")).WantError(t, graph.CodeNotImplemented, "ELEVENLABS_API_KEY")
	if s := e.dbSample(alice); s.Verified {
		t.Error("a server without a voice provider verified a sample")
	}
	e.Post(alice.Token, `mutation { deleteVoiceSample }`, nil).WantError(t, graph.CodeNotImplemented, "voice features are not available")
	var out struct{ Viewer struct{ Email string } }
	e.Post(alice.Token, `{ viewer { email } }`, nil).Decode(t, &out)
	if out.Viewer.Email != "alice@example.com" {
		t.Errorf("viewer = %+v, want alice's", out.Viewer)
	}
}

func TestVoiceSampleMutationsNeedSignIn(t *testing.T) {
	t.Parallel()
	fake := newFakeElevenLabs(t)
	e := newEnv(t, withVoice(fake.provider()))
	rec := audio("a.mp3", "audio/mpeg")

	e.createSample("", "", rec).WantCode(t, graph.CodeUnauthenticated)
	e.verifySample("", rec).WantCode(t, graph.CodeUnauthenticated)
	e.Post("", `mutation { deleteVoiceSample }`, nil).WantCode(t, graph.CodeUnauthenticated)
	if st := fake.state(); len(st.Clones) != 0 || len(st.Transcripts) != 0 {
		t.Errorf("anonymous requests reached the provider: clones %q, transcriptions %d", st.Clones, len(st.Transcripts))
	}
}

func TestVoiceSampleIsolation(t *testing.T) {
	t.Parallel()
	fake, e, alice := newFakeVoiceEnv(t)
	bob := e.NewUser("bob@example.com", false)
	sample := e.mustCreateSample(alice.Token, audio("a.mp3", "audio/mpeg"))
	// Bob reads Alice's phrase aloud perfectly: it must not matter.
	fake.setTranscript(sample.VerificationPhrase)

	var out struct {
		Viewer struct{ VoiceSample *sampleJSON }
	}
	e.Post(bob.Token, `{ viewer { voiceSample { id } } }`, nil).Decode(t, &out)
	if out.Viewer.VoiceSample != nil {
		t.Errorf("bob sees voice sample %+v", out.Viewer.VoiceSample)
	}
	e.verifySample(bob.Token, audio("phrase.webm", "audio/webm")).WantCode(t, graph.CodeNotFound)
	var deleted struct{ DeleteVoiceSample bool }
	e.Post(bob.Token, `mutation { deleteVoiceSample }`, nil).Decode(t, &deleted)
	if deleted.DeleteVoiceSample {
		t.Error("bob's deleteVoiceSample = true, want false: he has no sample")
	}

	e.wantSampleStored(t, alice, sample)
	if st := fake.state(); len(st.Deleted) != 0 || len(st.Transcripts) != 0 {
		t.Errorf("bob's attempts reached the provider: deleted %q, transcriptions %d", st.Deleted, len(st.Transcripts))
	}
}

func TestDeleteVoiceSample(t *testing.T) {
	t.Parallel()
	fake, e, alice := newFakeVoiceEnv(t)
	sample := e.mustCreateSample(alice.Token, audio("a.mp3", "audio/mpeg"))

	var out struct{ DeleteVoiceSample bool }
	e.Post(alice.Token, `mutation { deleteVoiceSample }`, nil).Decode(t, &out)
	if !out.DeleteVoiceSample {
		t.Fatal("deleteVoiceSample = false, want true")
	}
	if s := e.dbSample(alice); s.Count != 0 {
		t.Errorf("database still holds %+v", s)
	}
	st := fake.state()
	if !slices.Equal(st.Deleted, []string{sample.ElevenlabsVoiceID}) || len(st.Voices) != 0 {
		t.Errorf("provider deleted %q and holds %v, want %q deleted", st.Deleted, st.Voices, sample.ElevenlabsVoiceID)
	}

	e.Post(alice.Token, `mutation { deleteVoiceSample }`, nil).Decode(t, &out)
	if out.DeleteVoiceSample {
		t.Error("a second deleteVoiceSample = true, want false")
	}
	e.verifySample(alice.Token, audio("phrase.webm", "audio/webm")).WantCode(t, graph.CodeNotFound)
}

func TestStartGenerationNeedsVerifiedSample(t *testing.T) {
	t.Parallel()
	fake, e, alice := newFakeVoiceEnv(t)
	story := e.story("The Fox", "the-fox")
	start := func() response {
		return e.Post(alice.Token, `mutation($id: ID!) { startGeneration(storyId: $id) { id status } }`,
			map[string]any{"id": story.String()})
	}

	start().WantCode(t, graph.CodeVoiceNotVerified)
	sample := e.mustCreateSample(alice.Token, audio("a.mp3", "audio/mpeg"))
	start().WantCode(t, graph.CodeVoiceNotVerified)
	fake.setTranscript("Sorry, wrong words entirely.")
	e.verifySample(alice.Token, audio("phrase.webm", "audio/webm")).WantCode(t, graph.CodeBadUserInput)
	start().WantCode(t, graph.CodeVoiceNotVerified)

	fake.setTranscript(sample.VerificationPhrase)
	e.verifySample(alice.Token, audio("phrase.webm", "audio/webm")).Decode(t, &struct{}{})
	var out struct {
		StartGeneration struct{ ID, Status string }
	}
	start().Decode(t, &out)
	if out.StartGeneration.Status != "PENDING" {
		t.Errorf("startGeneration status = %q, want PENDING", out.StartGeneration.Status)
	}
}

// A real recording has background noise, which ElevenLabs' speech to text
// tags by default; the phrase check must still pass on the words.
func TestVerifyVoiceSampleWithBackgroundNoise(t *testing.T) {
	t.Parallel()
	fake, e, alice := newFakeVoiceEnv(t)
	sample := e.mustCreateSample(alice.Token, audio("a.mp3", "audio/mpeg"))
	fake.hearNoise("(background noise)")
	fake.setTranscript(sample.VerificationPhrase)
	var out struct{ VerifyVoiceSample sampleJSON }
	e.verifySample(alice.Token, audio("phrase.webm", "audio/webm")).Decode(t, &out)
	if !out.VerifyVoiceSample.Verified {
		t.Errorf("verifyVoiceSample = %+v, want verified", out.VerifyVoiceSample)
	}
}

// A voice ElevenLabs holds back (requires_verification) is stored as
// such, and no narration can start with it, whatever the phrase check said.
func TestStartGenerationRefusesVoiceHeldByProvider(t *testing.T) {
	t.Parallel()
	fake, e, alice := newFakeVoiceEnv(t)
	fake.holdVoices()
	story := e.story("The Fox", "the-fox")
	sample := e.mustCreateSample(alice.Token, audio("a.mp3", "audio/mpeg"))
	if !sample.ProviderVerificationRequired {
		t.Errorf("createVoiceSample = %+v, want providerVerificationRequired", sample)
	}
	fake.setTranscript(sample.VerificationPhrase)
	var out struct{ VerifyVoiceSample sampleJSON }
	e.verifySample(alice.Token, audio("phrase.webm", "audio/webm")).Decode(t, &out)
	if got := out.VerifyVoiceSample; !got.Verified || !got.ProviderVerificationRequired {
		t.Errorf("verifyVoiceSample = %+v, want verified and still held by the provider", got)
	}
	e.Post(alice.Token, `mutation($id: ID!) { startGeneration(storyId: $id) { id } }`,
		map[string]any{"id": story.String()}).WantError(t, graph.CodeVoiceNotVerified, "requires_verification")
	var n int
	e.Scan(`SELECT count(*) FROM story_generations WHERE user_id = $1`, []any{alice.ID}, &n)
	if n != 0 {
		t.Errorf("%d generations queued with a held voice", n)
	}
}
