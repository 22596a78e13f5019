// Package elevenlabs is a voice provider on the ElevenLabs HTTP API:
// instant voice cloning, text to speech and speech to text.
//
// The client is deliberately thin. It never retries, because the generation
// worker owns the retry policy; instead every failure is a *voice.Error whose
// Kind tells the worker whether retrying can help.
package elevenlabs

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/narrate/narrate/voice"
)

// Defaults for Config fields left zero.
const (
	DefaultBaseURL              = "https://api.elevenlabs.io"
	DefaultModelID              = "eleven_multilingual_v2"
	DefaultTranscriptionModelID = "scribe_v1"
	DefaultTimeout              = 5 * time.Minute
	DefaultMaxConcurrent        = 2
)

// outputFormat is the synthesis format: MP3 plays in every browser, and
// 44.1 kHz at 128 kbit/s is available on every paid plan.
const outputFormat = "mp3_44100_128"

// maxPreviousRequests is the most request ids the text-to-speech endpoint
// accepts for stitching ("A maximum of 3 request_ids can be send").
const maxPreviousRequests = 3

// unstitchedModels are the models for which request stitching is not
// available: ElevenLabs documents that eleven_v3 does not support
// previous_request_ids, so none are sent for it.
var unstitchedModels = map[string]bool{
	"eleven_v3": true,
}

// maxErrorBody bounds how much of an error response is read, since only the
// JSON detail at its start is of use.
const maxErrorBody = 64 << 10

// maxJSONBody bounds a successful JSON response; transcripts with word
// timings are the largest, at about a hundred bytes per word.
const maxJSONBody = 8 << 20

// maxAudioBody bounds a synthesis response. Ten thousand characters of
// speech at 128 kbit/s is about 15 MB, so 200 MB only guards against a
// misbehaving server.
const maxAudioBody = 200 << 20

// modelChunkLimits are the per-request character limits ElevenLabs
// documents for its text-to-speech models. A longer text is rejected with a
// 400 that no retry can fix, so the worker splits stories under the limit.
var modelChunkLimits = map[string]int{
	"eleven_v3":              3_000,
	"eleven_flash_v2_5":      40_000,
	"eleven_turbo_v2_5":      40_000,
	"eleven_flash_v2":        30_000,
	"eleven_turbo_v2":        30_000,
	"eleven_multilingual_v2": 10_000,
	"eleven_multilingual_v1": 10_000,
	"eleven_monolingual_v1":  10_000,
}

// fallbackChunkLimit is the limit of a model missing from modelChunkLimits:
// the smallest documented one, which the model is most likely to accept,
// since a chunk over the real limit fails the whole narration.
var fallbackChunkLimit = slices.Min(slices.Collect(maps.Values(modelChunkLimits)))

// Config configures a Client.
type Config struct {
	// APIKey is sent as the xi-api-key header. Required.
	APIKey string
	// BaseURL is the API root; default DefaultBaseURL.
	BaseURL string
	// ModelID is the text-to-speech model; default DefaultModelID.
	ModelID string
	// TranscriptionModelID is the speech-to-text model; default
	// DefaultTranscriptionModelID.
	TranscriptionModelID string
	// ChunkLimit overrides the per-request character limit of ModelID.
	ChunkLimit int
	// HTTPClient sends the requests; default a new client without a
	// timeout of its own, since Timeout bounds each request.
	HTTPClient *http.Client
	// Timeout bounds each request, including reading the response;
	// default DefaultTimeout. A request that times out fails with
	// voice.KindNetwork and may be retried.
	Timeout time.Duration
	// MaxConcurrent bounds concurrent synthesis and transcription requests
	// from this client, to stay within the plan's concurrency limit;
	// default DefaultMaxConcurrent.
	MaxConcurrent int
}

// Client is the ElevenLabs voice provider. It is safe for concurrent use.
type Client struct {
	apiKey     string
	baseURL    string
	model      string
	sttModel   string
	chunkLimit int
	stitch     bool
	http       *http.Client
	timeout    time.Duration
	sem        chan struct{}
}

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("elevenlabs: API key is required")
	}
	base := strings.TrimRight(cmp.Or(cfg.BaseURL, DefaultBaseURL), "/")
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return nil, fmt.Errorf("elevenlabs: invalid base URL %q", base)
	}
	model := cmp.Or(cfg.ModelID, DefaultModelID)
	return &Client{
		apiKey:     cfg.APIKey,
		baseURL:    base,
		model:      model,
		sttModel:   cmp.Or(cfg.TranscriptionModelID, DefaultTranscriptionModelID),
		chunkLimit: cmp.Or(max(cfg.ChunkLimit, 0), modelChunkLimits[model], fallbackChunkLimit),
		stitch:     !unstitchedModels[model],
		http:       cmp.Or(cfg.HTTPClient, &http.Client{}),
		timeout:    cmp.Or(max(cfg.Timeout, 0), DefaultTimeout),
		sem:        make(chan struct{}, cmp.Or(max(cfg.MaxConcurrent, 0), DefaultMaxConcurrent)),
	}, nil
}

// Name returns "elevenlabs".
func (c *Client) Name() string { return "elevenlabs" }

// ChunkLimit returns the per-request character limit of the configured model.
func (c *Client) ChunkLimit() int { return c.chunkLimit }

// CloneVoice creates an instant voice clone from samples with
// POST /v1/voices/add. ElevenLabs may answer requires_verification: the
// voice then exists but cannot narrate until it is verified at ElevenLabs,
// which the returned Clone reports.
func (c *Client) CloneVoice(ctx context.Context, name string, samples []voice.File) (voice.Clone, error) {
	if len(samples) == 0 {
		return voice.Clone{}, c.badRequest("clone voice: no samples")
	}
	body, err := newMultipart([]field{{name: "name", value: name}}, "files", samples)
	if err != nil {
		return voice.Clone{}, fmt.Errorf("clone voice: %w", err)
	}
	var out struct {
		VoiceID              string `json:"voice_id"`
		RequiresVerification bool   `json:"requires_verification"`
	}
	if err := c.doJSON(ctx, http.MethodPost, "/v1/voices/add", nil, body, &out); err != nil {
		return voice.Clone{}, fmt.Errorf("clone voice: %w", err)
	}
	if out.VoiceID == "" {
		return voice.Clone{}, fmt.Errorf("clone voice: %w", &voice.Error{Provider: c.Name(), Kind: voice.KindOther, Message: "response has no voice_id"})
	}
	return voice.Clone{VoiceID: out.VoiceID, RequiresVerification: out.RequiresVerification}, nil
}

// DeleteVoice deletes a voice with DELETE /v1/voices/{voice_id}. A voice
// that does not exist counts as deleted.
func (c *Client) DeleteVoice(ctx context.Context, voiceID string) error {
	if voiceID == "" {
		return c.badRequest("delete voice: empty voice id")
	}
	err := c.doJSON(ctx, http.MethodDelete, "/v1/voices/"+url.PathEscape(voiceID), nil, nil, nil)
	if err != nil && voice.KindOf(err) != voice.KindVoiceNotFound {
		return fmt.Errorf("delete voice: %w", err)
	}
	return nil
}

// Synthesize narrates req.Text with POST /v1/text-to-speech/{voice_id} and
// returns MP3 audio. Only the last three PreviousRequestIDs are sent, the
// most the API accepts, and none for models without request stitching.
func (c *Client) Synthesize(ctx context.Context, req voice.SynthesisRequest) (*voice.Audio, error) {
	switch {
	case req.VoiceID == "":
		return nil, c.badRequest("synthesize: empty voice id")
	case strings.TrimSpace(req.Text) == "":
		return nil, c.badRequest("synthesize: empty text")
	case utf8.RuneCountInString(req.Text) > c.chunkLimit:
		return nil, c.badRequest(fmt.Sprintf("synthesize: text longer than %d characters", c.chunkLimit))
	}
	prev := req.PreviousRequestIDs
	if !c.stitch {
		prev = nil
	}
	if len(prev) > maxPreviousRequests {
		prev = prev[len(prev)-maxPreviousRequests:]
	}
	payload, err := json.Marshal(struct {
		Text               string   `json:"text"`
		ModelID            string   `json:"model_id"`
		PreviousRequestIDs []string `json:"previous_request_ids,omitempty"`
	}{req.Text, c.model, prev})
	if err != nil {
		return nil, fmt.Errorf("synthesize: %w", err)
	}

	if err := c.acquire(ctx); err != nil {
		return nil, fmt.Errorf("synthesize: %w", err)
	}
	defer c.release()

	query := url.Values{"output_format": {outputFormat}}
	resp, data, err := c.do(ctx, http.MethodPost, "/v1/text-to-speech/"+url.PathEscape(req.VoiceID), query,
		&requestBody{contentType: "application/json", data: [][]byte{payload}}, maxAudioBody)
	if err != nil {
		return nil, fmt.Errorf("synthesize: %w", err)
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("synthesize: %w", &voice.Error{Provider: c.Name(), Kind: voice.KindServer, Status: resp.StatusCode, Message: "empty audio response"})
	}
	contentType := resp.Header.Get("Content-Type")
	if !strings.HasPrefix(contentType, "audio/") {
		contentType = "audio/mpeg"
	}
	return &voice.Audio{
		Data:        data,
		ContentType: contentType,
		Extension:   "mp3",
		RequestID:   resp.Header.Get("request-id"),
	}, nil
}

// Transcribe returns the words spoken in recording, using
// POST /v1/speech-to-text.
//
// Speech to text tags audio events by default, writing "(laughter)" or
// "(background noise)" into the transcript, which would make a real
// recording fail the verification phrase check. The request turns tagging
// off, and the transcript is rebuilt from the words that are not events in
// case a model tags them anyway.
func (c *Client) Transcribe(ctx context.Context, recording voice.File) (string, error) {
	if len(recording.Data) == 0 {
		return "", c.badRequest("transcribe: empty recording")
	}
	body, err := newMultipart([]field{
		{name: "model_id", value: c.sttModel},
		{name: "tag_audio_events", value: "false"},
	}, "file", []voice.File{recording})
	if err != nil {
		return "", fmt.Errorf("transcribe: %w", err)
	}
	if err := c.acquire(ctx); err != nil {
		return "", fmt.Errorf("transcribe: %w", err)
	}
	defer c.release()

	var out transcript
	if err := c.doJSON(ctx, http.MethodPost, "/v1/speech-to-text", nil, body, &out); err != nil {
		return "", fmt.Errorf("transcribe: %w", err)
	}
	return out.spoken(), nil
}

// transcript is the part of a speech-to-text response Transcribe reads.
type transcript struct {
	Text  string `json:"text"`
	Words []struct {
		Text string `json:"text"`
		// Type is "word", "spacing" or "audio_event".
		Type string `json:"type"`
	} `json:"words"`
}

// spoken returns the transcript without audio events: the words and the
// spacing between them, or the text when the response lists no words.
func (t transcript) spoken() string {
	if len(t.Words) == 0 {
		return t.Text
	}
	var b strings.Builder
	for _, w := range t.Words {
		switch w.Type {
		case "word":
			b.WriteString(w.Text)
		case "spacing":
			b.WriteString(" ")
		}
	}
	return strings.TrimSpace(b.String())
}

// acquire takes a concurrency slot, waiting until one is free or ctx ends.
func (c *Client) acquire(ctx context.Context) error {
	select {
	case c.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Client) release() { <-c.sem }

func (c *Client) badRequest(msg string) error {
	return &voice.Error{Provider: c.Name(), Kind: voice.KindBadRequest, Message: msg}
}

// doJSON sends a request and decodes a JSON response into out (when out is
// non-nil).
func (c *Client) doJSON(ctx context.Context, method, path string, query url.Values, body *requestBody, out any) error {
	resp, data, err := c.do(ctx, method, path, query, body, maxJSONBody)
	if err != nil || out == nil {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return &voice.Error{Provider: c.Name(), Kind: voice.KindOther, Status: resp.StatusCode,
			Message: "malformed response", Err: err}
	}
	return nil
}

// do performs one request within the per-request timeout and returns the
// response, whose body is already closed, with the body's contents, at
// most limit bytes. A non-2xx status is a *voice.Error describing the
// failure; when ctx ends first, do returns ctx's error. path must already
// be escaped.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body *requestBody, limit int64) (*http.Response, []byte, error) {
	reqCtx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	target := c.baseURL + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var r io.Reader
	if body != nil {
		r = body.reader()
	}
	req, err := http.NewRequestWithContext(reqCtx, method, target, r)
	if err != nil {
		return nil, nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("xi-api-key", c.apiKey)
	req.Header.Set("Accept", "application/json, audio/mpeg")
	if body != nil {
		req.Header.Set("Content-Type", body.contentType)
		req.ContentLength = body.size()
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(body.reader()), nil }
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, c.transportError(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, nil, c.responseError(resp)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, nil, c.transportError(ctx, err)
	}
	if int64(len(data)) > limit {
		return nil, nil, &voice.Error{Provider: c.Name(), Kind: voice.KindOther, Status: resp.StatusCode, Message: "response too large"}
	}
	return resp, data, nil
}

// transportError classifies a failure to get or read a response. When the
// caller's context ctx ended it returns that context's error plainly, since
// retrying a request nobody waits for is pointless; the per-request timeout,
// by contrast, is a retryable network error.
func (c *Client) transportError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return &voice.Error{Provider: c.Name(), Kind: voice.KindNetwork, Err: err}
}

// responseError turns a non-2xx response into a *voice.Error.
func (c *Client) responseError(resp *http.Response) *voice.Error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	code, msg := parseDetail(data)
	e := &voice.Error{
		Provider:   c.Name(),
		Status:     resp.StatusCode,
		Code:       code,
		Message:    msg,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After")),
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		e.Kind = voice.KindRateLimited
	case resp.StatusCode >= 500:
		e.Kind = voice.KindServer
	case code == "quota_exceeded":
		e.Kind = voice.KindQuota
	case resp.StatusCode == http.StatusNotFound || code == "voice_not_found":
		e.Kind = voice.KindVoiceNotFound
	case resp.StatusCode == http.StatusUnauthorized:
		e.Kind = voice.KindUnauthorized
	case resp.StatusCode >= 400:
		e.Kind = voice.KindBadRequest
	default:
		e.Kind = voice.KindOther
	}
	return e
}

// parseDetail extracts the error code and message from an ElevenLabs error
// body. The "detail" member is an object {"status", "message"} for most
// errors, a plain string for some, and a list of {"loc", "msg", "type"}
// items for request validation errors (422).
func parseDetail(data []byte) (code, msg string) {
	var body struct {
		Detail json.RawMessage `json:"detail"`
	}
	if err := json.Unmarshal(data, &body); err != nil || len(body.Detail) == 0 {
		return "", truncate(strings.TrimSpace(string(data)))
	}
	var obj struct {
		Status  string `json:"status"`
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body.Detail, &obj) == nil && (obj.Status != "" || obj.Code != "" || obj.Message != "") {
		return cmp.Or(obj.Status, obj.Code), truncate(obj.Message)
	}
	var s string
	if json.Unmarshal(body.Detail, &s) == nil {
		return "", truncate(s)
	}
	var list []struct {
		Loc  []any  `json:"loc"`
		Msg  string `json:"msg"`
		Type string `json:"type"`
	}
	if json.Unmarshal(body.Detail, &list) == nil {
		parts := make([]string, 0, len(list))
		for _, item := range list {
			loc := make([]string, 0, len(item.Loc))
			for _, l := range item.Loc {
				loc = append(loc, fmt.Sprint(l))
			}
			if len(loc) > 0 {
				parts = append(parts, strings.Join(loc, ".")+": "+item.Msg)
			} else {
				parts = append(parts, item.Msg)
			}
		}
		if len(list) > 0 {
			code = list[0].Type
		}
		return code, truncate(strings.Join(parts, "; "))
	}
	return "", truncate(string(body.Detail))
}

// truncate keeps error messages short enough for logs.
func truncate(s string) string {
	const max = 500
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// parseRetryAfter reads a Retry-After header in seconds or as an HTTP date.
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// requestBody is a request payload held as segments, so that multipart
// uploads reuse the callers' file buffers instead of copying up to 250 MB,
// while still having a known length and being replayable.
type requestBody struct {
	contentType string
	data        [][]byte
}

func (b *requestBody) reader() io.Reader {
	readers := make([]io.Reader, len(b.data))
	for i, d := range b.data {
		readers[i] = bytes.NewReader(d)
	}
	return io.MultiReader(readers...)
}

func (b *requestBody) size() int64 {
	var n int64
	for _, d := range b.data {
		n += int64(len(d))
	}
	return n
}

type field struct{ name, value string }

// newMultipart builds a multipart/form-data body of fields followed by one
// part per file under fileField.
func newMultipart(fields []field, fileField string, files []voice.File) (*requestBody, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	body := &requestBody{contentType: mw.FormDataContentType()}
	for _, f := range fields {
		if err := mw.WriteField(f.name, f.value); err != nil {
			return nil, fmt.Errorf("write field %s: %w", f.name, err)
		}
	}
	for i, f := range files {
		name := f.Name
		if name == "" {
			name = fmt.Sprintf("sample-%d", i+1)
		}
		contentType := f.ContentType
		if contentType == "" {
			contentType = "application/octet-stream"
		}
		h := make(textproto.MIMEHeader)
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="%s"; filename="%s"`,
			escapeQuotes(fileField), escapeQuotes(name)))
		h.Set("Content-Type", contentType)
		// multipart.Writer writes part headers straight through to buf,
		// so the headers written so far can be cut off as one segment
		// and the file data appended as the next, uncopied.
		if _, err := mw.CreatePart(h); err != nil {
			return nil, fmt.Errorf("write part %s: %w", name, err)
		}
		body.data = append(body.data, bytes.Clone(buf.Bytes()), f.Data)
		buf.Reset()
	}
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("close multipart: %w", err)
	}
	body.data = append(body.data, bytes.Clone(buf.Bytes()))
	return body, nil
}

var quoteEscaper = strings.NewReplacer("\\", "\\\\", `"`, "\\\"", "\r", "", "\n", "")

func escapeQuotes(s string) string { return quoteEscaper.Replace(s) }
