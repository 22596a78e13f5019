package storage

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Local is a Store in a directory of the local file system. Keys map to
// files under the directory; every access goes through an os.Root, so no
// key or symbolic link can reach outside it.
//
// Local does not record the content type given to Put: Open derives it from
// the key's extension (see ContentTypeByKey), which is why keys should end
// in ".mp3", ".wav" and so on.
type Local struct {
	root *os.Root
}

var _ Store = (*Local)(nil)

// NewLocal returns a Store keeping files under dir, creating dir if needed.
// Call Close to release it.
func NewLocal(dir string) (*Local, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create storage directory: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open storage directory: %w", err)
	}
	return &Local{root: root}, nil
}

// Close releases the directory handle.
func (l *Local) Close() error {
	return l.root.Close()
}

// Put writes r to a temporary file next to the object, syncs it and renames
// it into place, so a crash or a concurrent Open never sees a partial
// object.
func (l *Local) Put(ctx context.Context, key string, r io.Reader, contentType string) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	if dir := path.Dir(key); dir != "." {
		if err := l.root.MkdirAll(dir, 0o750); err != nil {
			return fmt.Errorf("put %q: create directory: %w", key, err)
		}
	}
	// The temporary name starts with a dot, which ValidateKey rejects,
	// so it cannot collide with or be opened as an object.
	tmp := path.Join(path.Dir(key), ".tmp-"+strings.ToLower(rand.Text()))
	f, err := l.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("put %q: create temporary file: %w", key, err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = f.Close()
			_ = l.root.Remove(tmp)
		}
	}()
	if _, err := io.Copy(f, &ctxReader{ctx: ctx, r: r}); err != nil {
		return fmt.Errorf("put %q: write: %w", key, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("put %q: sync: %w", key, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("put %q: close: %w", key, err)
	}
	if err := l.root.Rename(tmp, key); err != nil {
		return fmt.Errorf("put %q: rename: %w", key, err)
	}
	committed = true
	return nil
}

// Open opens the file for key. The returned *os.File supports seeking, as
// http.ServeContent needs for range requests.
func (l *Local) Open(ctx context.Context, key string) (io.ReadSeekCloser, ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return nil, ObjectInfo{}, fmt.Errorf("open %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, ObjectInfo{}, fmt.Errorf("open %q: %w", key, err)
	}
	f, err := l.root.Open(key)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ObjectInfo{}, fmt.Errorf("open %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, ObjectInfo{}, fmt.Errorf("open %q: %w", key, err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, ObjectInfo{}, fmt.Errorf("open %q: stat: %w", key, err)
	}
	if !st.Mode().IsRegular() {
		_ = f.Close()
		return nil, ObjectInfo{}, fmt.Errorf("open %q: %w", key, ErrNotFound)
	}
	return f, ObjectInfo{
		Key:         key,
		Size:        st.Size(),
		ContentType: ContentTypeByKey(key),
		ModTime:     st.ModTime(),
	}, nil
}

// Delete removes the file for key; a missing file is not an error.
func (l *Local) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	st, err := l.root.Lstat(key)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	if st.IsDir() {
		return fmt.Errorf("delete %q: %w", key, ErrNotFound)
	}
	if err := l.root.Remove(key); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	return nil
}

// audioTypes names the audio formats Narrate stores, so that content types
// do not depend on the host's MIME tables.
var audioTypes = map[string]string{
	".mp3":  "audio/mpeg",
	".wav":  "audio/wav",
	".ogg":  "audio/ogg",
	".opus": "audio/ogg",
	".webm": "audio/webm",
	".m4a":  "audio/mp4",
	".mp4":  "audio/mp4",
	".flac": "audio/flac",
}

// ContentTypeByKey returns the media type for a key's extension, or
// "application/octet-stream" when it is unknown.
func ContentTypeByKey(key string) string {
	ext := strings.ToLower(filepath.Ext(key))
	if t, ok := audioTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

// ctxReader stops a copy when its context ends, so a Put of a large or slow
// stream can be canceled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
