package storage

import (
	"bytes"
	"context"
	"crypto/hmac"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

const (
	fakeAccessKeyID = "narrate-test-key"
	fakeSecret      = "narrate-test-secret"
	fakeBucket      = "audio"
	fakeRegion      = "eu-central-1"
)

// fakeS3 is an in-memory S3 service. gofakes3 does not check request
// signatures, so fakeS3 verifies them itself with the SDK's signer,
// recomputing each signature from the signed headers and the secret.
type fakeS3 struct {
	endpoint string
	backend  *s3mem.Backend
	gets     atomic.Int64
	// parts counts the parts of multipart uploads received.
	parts atomic.Int64
}

// newFakeS3 starts a fake holding fakeBucket, serving the S3 API under
// path (empty, or a prefix such as Supabase's "/storage/v1/s3").
func newFakeS3(t *testing.T, path string) *fakeS3 {
	t.Helper()
	f := &fakeS3{backend: s3mem.New()}
	if err := f.backend.CreateBucket(fakeBucket); err != nil {
		t.Fatal(err)
	}
	var api http.Handler = gofakes3.New(f.backend).Server()
	if path != "" {
		api = http.StripPrefix(path, api)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if code := verifySignature(r); code != "" {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>`+code+
				`</Code><Message>rejected by the test's signature check</Message></Error>`)
			return
		}
		if r.Method == http.MethodPut && r.URL.Query().Has("partNumber") {
			f.parts.Add(1)
		}
		if r.Method == http.MethodGet && strings.Count(strings.TrimPrefix(r.URL.Path, path+"/"), "/") > 0 {
			f.gets.Add(1)
		}
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.endpoint = srv.URL + path
	return f
}

// verifySignature returns "" when r carries a valid AWS Signature Version 4
// by fakeAccessKeyID and fakeSecret, and otherwise the S3 error code.
func verifySignature(r *http.Request) string {
	rest, ok := strings.CutPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ")
	if !ok {
		return "AccessDenied"
	}
	fields := map[string]string{}
	for f := range strings.SplitSeq(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		fields[k] = v
	}
	scope := strings.Split(fields["Credential"], "/") // key/date/region/service/aws4_request
	if len(scope) != 5 {
		return "AuthorizationHeaderMalformed"
	}
	if scope[0] != fakeAccessKeyID {
		return "InvalidAccessKeyId"
	}
	signedAt, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return "AccessDenied"
	}
	clone := &http.Request{
		Method: r.Method,
		URL:    &url.URL{Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery},
		Host:   r.Host,
		Header: http.Header{},
	}
	for h := range strings.SplitSeq(fields["SignedHeaders"], ";") {
		switch h {
		case "host":
		case "content-length":
			clone.ContentLength = r.ContentLength
		default:
			clone.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	creds := aws.Credentials{AccessKeyID: fakeAccessKeyID, SecretAccessKey: fakeSecret}
	if err := signer.SignHTTP(r.Context(), creds, clone, r.Header.Get("X-Amz-Content-Sha256"), scope[3], scope[2], signedAt); err != nil {
		return "AccessDenied"
	}
	_, want, _ := strings.Cut(clone.Header.Get("Authorization"), "Signature=")
	if !hmac.Equal([]byte(want), []byte(fields["Signature"])) {
		return "SignatureDoesNotMatch"
	}
	return ""
}

func (f *fakeS3) config() S3Config {
	return S3Config{
		Endpoint:        f.endpoint,
		Region:          fakeRegion,
		Bucket:          fakeBucket,
		AccessKeyID:     fakeAccessKeyID,
		SecretAccessKey: fakeSecret,
		PathStyle:       true,
	}
}

func newS3Store(t *testing.T, cfg S3Config) *S3 {
	t.Helper()
	s, err := NewS3(t.Context(), cfg)
	if err != nil {
		t.Fatalf("NewS3: %v", err)
	}
	return s
}

func TestS3RoundTrip(t *testing.T) {
	t.Parallel()
	for name, path := range map[string]string{
		"endpoint at the root":            "",
		"endpoint with a path (Supabase)": "/storage/v1/s3",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newS3Store(t, newFakeS3(t, path).config())
			const key = "generations/0d6c9a3e.mp3"
			putTwice(t, s, key, time.Now().Add(-time.Minute))
			deleteTwice(t, s, key)
		})
	}
}

func TestS3ContentType(t *testing.T) {
	t.Parallel()
	s := newS3Store(t, newFakeS3(t, "").config())
	for _, tc := range []struct {
		key, given, want string
	}{
		{"a.wav", "audio/wav", "audio/wav"},
		{"b.mp3", "audio/x-custom", "audio/x-custom"}, // what Put was given, not what the key suggests
		{"c.ogg", "", "audio/ogg"},                    // derived from the key
		{"d.unknown", "", "application/octet-stream"},
	} {
		if err := s.Put(t.Context(), tc.key, strings.NewReader("x"), tc.given); err != nil {
			t.Fatal(err)
		}
		if _, info := readObject(t, s, tc.key); info.ContentType != tc.want {
			t.Errorf("Put(%q, %q): content type %q, want %q", tc.key, tc.given, info.ContentType, tc.want)
		}
	}
}

func TestS3PutUnseekableStream(t *testing.T) {
	t.Parallel()
	s := newS3Store(t, newFakeS3(t, "").config())
	want := bytes.Repeat([]byte("narration "), 10_000)
	// OneByteReader hides bytes.Reader's Seek, as a pipe or network body would.
	if err := s.Put(t.Context(), "stream.mp3", iotest.OneByteReader(bytes.NewReader(want)), "audio/mpeg"); err != nil {
		t.Fatal(err)
	}
	if got, _ := readObject(t, s, "stream.mp3"); !bytes.Equal(got, want) {
		t.Errorf("read %d bytes, want the %d written", len(got), len(want))
	}
}

// TestS3PutStreamsInParts uploads an unseekable stream of several parts
// (the part size lowered to keep the test small): it goes up as a
// multipart upload, part by part, and reads back whole; a stream that
// fails midway leaves nothing behind.
func TestS3PutStreamsInParts(t *testing.T) {
	t.Parallel()
	fake := newFakeS3(t, "")
	s := newS3Store(t, fake.config())
	s.partSize = 5 << 20 // S3's smallest
	want := bytes.Repeat([]byte("0123456789abcdef"), (12<<20)/16+7)
	if err := s.Put(t.Context(), "long.wav", iotest.OneByteReader(bytes.NewReader(want)), "audio/wav"); err != nil {
		t.Fatal(err)
	}
	got, info := readObject(t, s, "long.wav")
	if !bytes.Equal(got, want) || info.ContentType != "audio/wav" {
		t.Errorf("read %d bytes of %s, want the %d written as audio/wav", len(got), info.ContentType, len(want))
	}
	if n := fake.parts.Load(); n != 3 {
		t.Errorf("uploaded in %d parts, want 3 of at most 5 MiB", n)
	}

	failing := io.MultiReader(bytes.NewReader(want[:6<<20]), iotest.ErrReader(errors.New("encoder died")))
	if err := s.Put(t.Context(), "broken.wav", failing, "audio/wav"); err == nil {
		t.Fatal("Put of a failing stream succeeded")
	}
	if _, _, err := s.Open(t.Context(), "broken.wav"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open after a failed Put: err = %v, want ErrNotFound", err)
	}
	if list, err := fake.backend.ListBucket(fakeBucket, nil, gofakes3.ListBucketPage{}); err != nil || len(list.Contents) != 1 {
		t.Errorf("bucket holds %v (%v), want the one complete object", list, err)
	}
}

func TestS3PutCanceled(t *testing.T) {
	t.Parallel()
	s := newS3Store(t, newFakeS3(t, "").config())
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for name, r := range map[string]io.Reader{
		"seekable":   strings.NewReader("x"),
		"unseekable": iotest.OneByteReader(strings.NewReader("x")),
	} {
		if err := s.Put(ctx, "canceled.mp3", r, ""); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: Put with a canceled context: err = %v, want context.Canceled", name, err)
		}
	}
	if _, _, err := s.Open(t.Context(), "canceled.mp3"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open after a canceled Put: err = %v, want ErrNotFound", err)
	}
}

func TestS3InvalidKeys(t *testing.T) {
	t.Parallel()
	checkRejectsBadKeys(t, newS3Store(t, newFakeS3(t, "").config()))
}

func TestS3Prefix(t *testing.T) {
	t.Parallel()
	fake := newFakeS3(t, "")
	ctx := t.Context()
	cfg := fake.config()
	cfg.Prefix = "/staging/audio/" // surrounding slashes are ignored
	prefixed := newS3Store(t, cfg)
	plain := newS3Store(t, fake.config())

	if err := prefixed.Put(ctx, "generations/g.mp3", strings.NewReader("prefixed"), ""); err != nil {
		t.Fatal(err)
	}
	if got, _ := readObject(t, plain, "staging/audio/generations/g.mp3"); string(got) != "prefixed" {
		t.Errorf("object under the prefix holds %q", got)
	}
	if _, _, err := plain.Open(ctx, "generations/g.mp3"); !errors.Is(err, ErrNotFound) {
		t.Errorf("object outside the prefix: err = %v, want ErrNotFound", err)
	}
	if _, info := readObject(t, prefixed, "generations/g.mp3"); info.Key != "generations/g.mp3" {
		t.Errorf("info.Key = %q, want the key without the prefix", info.Key)
	}

	if err := plain.Put(ctx, "other.mp3", strings.NewReader("x"), ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := prefixed.Open(ctx, "other.mp3"); !errors.Is(err, ErrNotFound) {
		t.Errorf("prefixed store sees an object outside its prefix: err = %v", err)
	}
	if err := prefixed.Delete(ctx, "generations/g.mp3"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := plain.Open(ctx, "staging/audio/generations/g.mp3"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after Delete through the prefixed store: err = %v, want ErrNotFound", err)
	}
}

func TestS3ObjectSeek(t *testing.T) {
	t.Parallel()
	fake := newFakeS3(t, "")
	s := newS3Store(t, fake.config())
	data := make([]byte, 64<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.UintN(256))
	}
	if err := s.Put(t.Context(), "seek.mp3", bytes.NewReader(data), ""); err != nil {
		t.Fatal(err)
	}

	startGets := fake.gets.Load()
	f, info, err := s.Open(t.Context(), "seek.mp3")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if info.Size != int64(len(data)) {
		t.Fatalf("size %d, want %d", info.Size, len(data))
	}
	// What http.ServeContent does for a whole-object request: find the
	// size, rewind, read. The GET made by Open serves it all.
	if end, err := f.Seek(0, io.SeekEnd); err != nil || end != int64(len(data)) {
		t.Fatalf("Seek(0, SeekEnd) = %d, %v", end, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 1000)
	if _, err := io.ReadFull(f, head); err != nil || !bytes.Equal(head, data[:1000]) {
		t.Fatalf("first 1000 bytes differ (err %v)", err)
	}
	if n := fake.gets.Load() - startGets; n != 1 {
		t.Errorf("reading from the start made %d GETs, want 1", n)
	}

	for _, tc := range []struct {
		offset int64
		whence int
		pos    int64
	}{
		{40_000, io.SeekStart, 40_000},
		{-100, io.SeekEnd, int64(len(data)) - 100},
		{-30_000, io.SeekCurrent, int64(len(data)) - 30_000}, // after reading the 100 bytes above
		{5, io.SeekStart, 5},
	} {
		pos, err := f.Seek(tc.offset, tc.whence)
		if err != nil || pos != tc.pos {
			t.Fatalf("Seek(%d, %d) = %d, %v; want %d", tc.offset, tc.whence, pos, err, tc.pos)
		}
		got := make([]byte, 100)
		if _, err := io.ReadFull(f, got); err != nil {
			t.Fatalf("read at %d: %v", pos, err)
		}
		if !bytes.Equal(got, data[pos:pos+100]) {
			t.Errorf("bytes at %d differ", pos)
		}
	}

	if _, err := f.Seek(int64(len(data))+10, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if n, err := f.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("read past the end = %d, %v; want 0, EOF", n, err)
	}
	if _, err := f.Seek(-1, io.SeekStart); err == nil {
		t.Error("seek to a negative position succeeded")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Read(make([]byte, 1)); err == nil {
		t.Error("read after Close succeeded")
	}
}

func TestS3ServedThroughHandler(t *testing.T) {
	t.Parallel()
	s := newS3Store(t, newFakeS3(t, "").config())
	audio := []byte("ID3 pretend this is an mp3 frame stream of some length")
	const key = "generations/served.mp3"
	if err := s.Put(t.Context(), key, bytes.NewReader(audio), "audio/mpeg"); err != nil {
		t.Fatal(err)
	}
	signer := NewSigner([]byte("test secret"), "http://unused")
	srv := httptest.NewServer(Handler(s, signer))
	t.Cleanup(srv.Close)
	link := func(key string) string {
		u, err := url.Parse(signer.URL(key, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return srv.URL + u.RequestURI()
	}

	for _, tc := range []struct {
		name, method, key, rangeHdr string
		status                      int
		body                        string
	}{
		{"whole object", http.MethodGet, key, "", http.StatusOK, string(audio)},
		{"head", http.MethodHead, key, "", http.StatusOK, ""},
		{"range", http.MethodGet, key, "bytes=4-11", http.StatusPartialContent, string(audio[4:12])},
		{"suffix range", http.MethodGet, key, "bytes=-6", http.StatusPartialContent, string(audio[len(audio)-6:])},
		{"missing object", http.MethodGet, "generations/missing.mp3", "", http.StatusNotFound, "404 page not found\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			header := http.Header{}
			if tc.rangeHdr != "" {
				header.Set("Range", tc.rangeHdr)
			}
			resp, body := get(t, tc.method, link(tc.key), header)
			if resp.StatusCode != tc.status || body != tc.body {
				t.Fatalf("status %d body %q, want %d %q", resp.StatusCode, body, tc.status, tc.body)
			}
			if tc.status == http.StatusNotFound {
				return
			}
			if ct := resp.Header.Get("Content-Type"); ct != "audio/mpeg" {
				t.Errorf("Content-Type %q", ct)
			}
			if tc.method == http.MethodHead && resp.ContentLength != int64(len(audio)) {
				t.Errorf("HEAD Content-Length %d, want %d", resp.ContentLength, len(audio))
			}
		})
	}
}

func TestNewS3Errors(t *testing.T) {
	t.Parallel()
	fake := newFakeS3(t, "")
	for _, tc := range []struct {
		name   string
		change func(*S3Config)
		want   []string // substrings of the error
	}{
		{"wrong secret", func(c *S3Config) { c.SecretAccessKey = "wrong" }, []string{"SignatureDoesNotMatch", "check the access key ID and secret access key"}},
		{"unknown access key", func(c *S3Config) { c.AccessKeyID = "someone-else" }, []string{"InvalidAccessKeyId", "check the access key ID and secret access key"}},
		{"missing bucket", func(c *S3Config) { c.Bucket = "no-such-bucket" }, []string{"NoSuchBucket", "the bucket does not exist"}},
		{"no endpoint", func(c *S3Config) { c.Endpoint = "" }, []string{"not an absolute http(s) URL"}},
		{"endpoint without scheme", func(c *S3Config) { c.Endpoint = "storage.example.com" }, []string{"not an absolute http(s) URL"}},
		{"no bucket", func(c *S3Config) { c.Bucket = "" }, []string{"no bucket"}},
		{"no secret", func(c *S3Config) { c.SecretAccessKey = "" }, []string{"secret access key are required"}},
		{"prefix escaping", func(c *S3Config) { c.Prefix = "a/../../b" }, []string{"prefix", "invalid object key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := fake.config()
			tc.change(&cfg)
			s, err := NewS3(t.Context(), cfg)
			if err == nil {
				t.Fatalf("NewS3 succeeded: %+v", s)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}
