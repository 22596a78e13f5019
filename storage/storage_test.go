package storage

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func newLocal(t *testing.T) (*Local, string) {
	t.Helper()
	dir := t.TempDir()
	l, err := NewLocal(filepath.Join(dir, "audio"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l, filepath.Join(dir, "audio")
}

// readObject reads the whole object under key.
func readObject(t *testing.T, s Store, key string) ([]byte, ObjectInfo) {
	t.Helper()
	f, info, err := s.Open(t.Context(), key)
	if err != nil {
		t.Fatalf("Open(%q): %v", key, err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return data, info
}

// putTwice stores two versions of key and checks that the second replaced
// the first, with its size and content type, stored after before: what
// every Store does.
func putTwice(t *testing.T, s Store, key string, before time.Time) {
	t.Helper()
	for _, body := range []string{"first", "second version"} {
		if err := s.Put(t.Context(), key, strings.NewReader(body), "audio/mpeg"); err != nil {
			t.Fatal(err)
		}
	}
	data, info := readObject(t, s, key)
	if string(data) != "second version" {
		t.Errorf("read %q, want the replacing object", data)
	}
	if info.Key != key || info.Size != int64(len(data)) || info.ContentType != "audio/mpeg" || info.ModTime.Before(before) {
		t.Errorf("info = %+v", info)
	}
}

// deleteTwice deletes key, which is then not found, and deletes it again,
// which is no error: what every Store does.
func deleteTwice(t *testing.T, s Store, key string) {
	t.Helper()
	if err := s.Delete(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Open(t.Context(), key); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open after Delete: err = %v, want ErrNotFound", err)
	}
	if err := s.Delete(t.Context(), key); err != nil {
		t.Errorf("Delete of a missing object: %v", err)
	}
}

// badKeys are keys every Store refuses: they escape the store, are not
// clean, name temporary files or hold control characters or backslashes.
var badKeys = []string{
	"", "../secret.mp3", "a/../../secret.mp3", "a/../b.mp3", "/etc/passwd", "a//b.mp3", "a/./b.mp3",
	"a/", ".tmp-x", ".hidden.mp3", "a/.hidden.mp3", `a\..\secret.mp3`, "a\x00b.mp3", "a\nb.mp3", "..",
	strings.Repeat("a", maxKeyLen+1),
}

// checkRejectsBadKeys checks that Put, Open and Delete refuse every bad key.
func checkRejectsBadKeys(t *testing.T, s Store) {
	t.Helper()
	ctx := t.Context()
	for _, key := range badKeys {
		if err := s.Put(ctx, key, strings.NewReader("x"), "audio/mpeg"); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
		}
		if _, _, err := s.Open(ctx, key); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Open(%q) = %v, want ErrInvalidKey", key, err)
		}
		if err := s.Delete(ctx, key); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
}

func TestLocalPutOpenDelete(t *testing.T) {
	t.Parallel()
	l, dir := newLocal(t)
	key := "generations/0b8f5a7e-1c2d-4e5f-8a9b-0c1d2e3f4a5b.mp3"

	putTwice(t, l, key, time.Now().Add(-time.Minute))
	entries, err := os.ReadDir(filepath.Join(dir, "generations"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the object (no temporary files)", len(entries))
	}
	deleteTwice(t, l, key)
	if _, _, err := l.Open(t.Context(), "generations"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open of a directory = %v, want ErrNotFound", err)
	}
}

func TestLocalPutFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	l, dir := newLocal(t)
	boom := errors.New("boom")
	err := l.Put(t.Context(), "a/b.wav", iotest.ErrReader(boom), "audio/wav")
	if !errors.Is(err, boom) {
		t.Fatalf("Put = %v, want %v", err, boom)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := l.Put(ctx, "a/c.wav", strings.NewReader("x"), "audio/wav"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with canceled context = %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "a"))
	if len(entries) != 0 {
		t.Errorf("failed Puts left %d files", len(entries))
	}
}

func TestLocalRejectsBadKeys(t *testing.T) {
	t.Parallel()
	l, dir := newLocal(t)
	// A file beside the store directory that traversal would reach.
	if err := os.WriteFile(filepath.Join(filepath.Dir(dir), "secret.mp3"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	checkRejectsBadKeys(t, l)
}

func TestLocalRefusesSymlinkEscape(t *testing.T) {
	t.Parallel()
	l, dir := newLocal(t)
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "x.mp3"), []byte("outside"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Skip("symlinks unsupported:", err)
	}
	if _, _, err := l.Open(t.Context(), "link/x.mp3"); err == nil {
		t.Error("Open followed a symlink out of the store")
	}
	if err := l.Put(t.Context(), "link/y.mp3", strings.NewReader("x"), "audio/mpeg"); err == nil {
		t.Error("Put wrote through a symlink out of the store")
	}
	if _, err := os.Stat(filepath.Join(outside, "y.mp3")); err == nil {
		t.Error("file created outside the store")
	}
}

func TestContentTypeByKey(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]string{
		"g/a.mp3": "audio/mpeg", "g/a.WAV": "audio/wav", "g/a.webm": "audio/webm",
		"g/a": "application/octet-stream", "g/a.unknownext": "application/octet-stream",
	} {
		if got := ContentTypeByKey(key); got != want {
			t.Errorf("ContentTypeByKey(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestSignerCheck(t *testing.T) {
	t.Parallel()
	s := NewSigner([]byte("secret"), "http://localhost:8080/")
	link := s.URL("generations/a b.mp3", time.Hour)
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(link, "http://localhost:8080/audio/generations/a%20b.mp3?") {
		t.Errorf("URL = %q", link)
	}
	exp, sig := u.Query().Get("exp"), u.Query().Get("sig")
	now := time.Now()
	other := NewSigner([]byte("other secret"), "http://localhost:8080")
	tests := []struct {
		name   string
		signer *Signer
		key    string
		exp    string
		sig    string
		now    time.Time
		want   error
	}{
		{name: "valid", signer: s, key: "generations/a b.mp3", exp: exp, sig: sig, now: now},
		{name: "expired", signer: s, key: "generations/a b.mp3", exp: exp, sig: sig, now: now.Add(2 * time.Hour), want: ErrExpired},
		{name: "other key", signer: s, key: "generations/b.mp3", exp: exp, sig: sig, now: now, want: ErrBadSignature},
		{name: "extended expiry", signer: s, key: "generations/a b.mp3", exp: exp + "0", sig: sig, now: now, want: ErrBadSignature},
		{name: "tampered sig", signer: s, key: "generations/a b.mp3", exp: exp, sig: flip(sig), now: now, want: ErrBadSignature},
		{name: "other secret", signer: other, key: "generations/a b.mp3", exp: exp, sig: sig, now: now, want: ErrBadSignature},
		{name: "missing", signer: s, key: "generations/a b.mp3", now: now, want: ErrBadSignature},
		{name: "bad exp", signer: s, key: "generations/a b.mp3", exp: "soon", sig: sig, now: now, want: ErrBadSignature},
		{name: "bad base64", signer: s, key: "generations/a b.mp3", exp: exp, sig: "!!!", now: now, want: ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := tt.signer.Check(tt.key, tt.exp, tt.sig, tt.now); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("Check() = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestSignerLinksAreStable: reads of the same key within a step give the
// same link (so <audio src> and the browser's cache hold), the next step a
// new one, and every link lives at least its ttl and at most 1.25 ttl.
func TestSignerLinksAreStable(t *testing.T) {
	t.Parallel()
	s := NewSigner([]byte("secret"), "http://localhost:8080")
	const ttl = time.Hour
	base := time.Unix(1_800_000_000, 0).Truncate(15 * time.Minute) // the start of a step
	tests := []struct {
		name       string
		a, b       time.Duration // offsets of two reads from base
		wantSameAs bool
	}{
		{"a minute apart", 2 * time.Minute, 3 * time.Minute, true},
		{"first and last second of a step", time.Second, 15 * time.Minute, true},
		{"next step", 14 * time.Minute, 16 * time.Minute, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, b := s.urlAt("k.wav", ttl, base.Add(tt.a)), s.urlAt("k.wav", ttl, base.Add(tt.b))
			if (a == b) != tt.wantSameAs {
				t.Errorf("links %s and %s: same = %v, want %v", a, b, a == b, tt.wantSameAs)
			}
		})
	}
	for off := time.Duration(0); off < 30*time.Minute; off += 7 * time.Minute {
		now := base.Add(off)
		u, err := url.Parse(s.urlAt("k.wav", ttl, now))
		if err != nil {
			t.Fatal(err)
		}
		exp, _ := strconv.ParseInt(u.Query().Get("exp"), 10, 64)
		if life := time.Unix(exp, 0).Sub(now); life < ttl || life > ttl*5/4 {
			t.Errorf("a link made at +%v lives %v, want between %v and %v", off, life, ttl, ttl*5/4)
		}
		if err := s.Check("k.wav", u.Query().Get("exp"), u.Query().Get("sig"), now.Add(ttl-time.Second)); err != nil {
			t.Errorf("a link made at +%v fails before its ttl: %v", off, err)
		}
	}
}

// flip changes the first character of a base64url signature.
func flip(sig string) string {
	if sig[0] == 'A' {
		return "B" + sig[1:]
	}
	return "A" + sig[1:]
}

func TestNewSignerEmptySecretPanics(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Error("NewSigner with an empty secret did not panic")
		}
	}()
	NewSigner(nil, "http://x")
}

// newAudioServer serves Handler over a Local store holding one object, and
// returns a signer whose links point at the server.
func newAudioServer(t *testing.T, key, data string) (*httptest.Server, *Signer) {
	t.Helper()
	l, _ := newLocal(t)
	if err := l.Put(t.Context(), key, strings.NewReader(data), "audio/mpeg"); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	signer := NewSigner([]byte("test secret"), srv.URL)
	mux.Handle(AudioPath, Handler(l, signer))
	return srv, signer
}

func get(t *testing.T, method, link string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, link, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func TestHandler(t *testing.T) {
	t.Parallel()
	const key = "generations/5e1c.mp3"
	const data = "0123456789abcdefghij"
	srv, signer := newAudioServer(t, key, data)
	link := signer.URL(key, time.Hour)

	resp, body := get(t, http.MethodGet, link, nil)
	if resp.StatusCode != http.StatusOK || body != data {
		t.Fatalf("GET = %d %q", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "audio/mpeg" {
		t.Errorf("Content-Type = %q", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.HasPrefix(cc, "private, max-age=") || !strings.HasSuffix(cc, ", immutable") {
		t.Errorf("Cache-Control = %q", cc)
	}
	if resp.Header.Get("Accept-Ranges") != "bytes" {
		t.Errorf("Accept-Ranges = %q", resp.Header.Get("Accept-Ranges"))
	}

	resp, body = get(t, http.MethodHead, link, nil)
	if resp.StatusCode != http.StatusOK || body != "" || resp.ContentLength != int64(len(data)) {
		t.Errorf("HEAD = %d, body %q, length %d", resp.StatusCode, body, resp.ContentLength)
	}

	resp, body = get(t, http.MethodGet, link, http.Header{"Range": {"bytes=5-9"}})
	if resp.StatusCode != http.StatusPartialContent || body != "56789" {
		t.Errorf("Range GET = %d %q", resp.StatusCode, body)
	}
	if cr := resp.Header.Get("Content-Range"); cr != "bytes 5-9/20" {
		t.Errorf("Content-Range = %q", cr)
	}

	u, _ := url.Parse(link)
	q := u.Query()

	tampered := *u
	tq := url.Values{"exp": {q.Get("exp")}, "sig": {flip(q.Get("sig"))}}
	tampered.RawQuery = tq.Encode()

	otherKey := *u
	otherKey.Path = AudioPath + "generations/other.mp3"

	longer := *u
	lq := url.Values{"exp": {q.Get("exp") + "9"}, "sig": {q.Get("sig")}}
	longer.RawQuery = lq.Encode()

	unsigned := *u
	unsigned.RawQuery = ""

	tests := []struct {
		name   string
		method string
		link   string
		want   int
	}{
		{name: "tampered signature", method: http.MethodGet, link: tampered.String(), want: http.StatusForbidden},
		{name: "tampered key", method: http.MethodGet, link: otherKey.String(), want: http.StatusForbidden},
		{name: "tampered expiry", method: http.MethodGet, link: longer.String(), want: http.StatusForbidden},
		{name: "unsigned", method: http.MethodGet, link: unsigned.String(), want: http.StatusForbidden},
		{name: "expired", method: http.MethodGet, link: signer.urlAt(key, time.Hour, time.Now().Add(-2*time.Hour)), want: http.StatusForbidden},
		{name: "absent", method: http.MethodGet, link: signer.URL("generations/missing.mp3", time.Hour), want: http.StatusNotFound},
		{name: "traversal", method: http.MethodGet, link: srv.URL + "/audio/generations/..%2f..%2fsecret.mp3", want: http.StatusNotFound},
		{name: "post", method: http.MethodPost, link: link, want: http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := get(t, tt.method, tt.link, nil)
			if resp.StatusCode != tt.want {
				t.Errorf("%s %s = %d, want %d", tt.method, tt.link, resp.StatusCode, tt.want)
			}
			if strings.Contains(body, data) {
				t.Error("refused response contains the object")
			}
		})
	}
}
