// Package storage keeps generated audio and serves it through short-lived
// signed links, so that an <audio src> can play a narration without a
// bearer token.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
)

// Store keeps audio objects by key.
type Store interface {
	// Put stores the contents of r under key, replacing any earlier object.
	// Readers never observe a partly written object.
	Put(ctx context.Context, key string, r io.Reader, contentType string) error
	// Open returns the object under key and its metadata, or an error
	// wrapping ErrNotFound. The caller closes the reader.
	Open(ctx context.Context, key string) (io.ReadSeekCloser, ObjectInfo, error)
	// Delete removes the object under key. Deleting a missing object
	// succeeds.
	Delete(ctx context.Context, key string) error
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key         string
	Size        int64
	ContentType string
	ModTime     time.Time
}

// Errors callers branch on.
var (
	// ErrNotFound means no object is stored under the key.
	ErrNotFound = errors.New("object not found")
	// ErrInvalidKey means the key is not a clean relative slash-separated
	// path, for example because it contains "..".
	ErrInvalidKey = errors.New("invalid object key")
)

// maxKeyLen bounds keys well below file system path limits.
const maxKeyLen = 512

// ValidateKey reports whether key is acceptable to every Store: a relative,
// clean, slash-separated path such as "generations/<uuid>.mp3" whose
// segments do not start with a dot and contain no backslashes or control
// characters. The rules keep keys portable to object stores and keep them
// from reaching outside the store or colliding with temporary files.
func ValidateKey(key string) error {
	switch {
	case key == "", len(key) > maxKeyLen:
		return fmt.Errorf("%w: length %d", ErrInvalidKey, len(key))
	case path.Clean(key) != key, strings.HasPrefix(key, "/"):
		return fmt.Errorf("%w: %q is not a clean relative path", ErrInvalidKey, key)
	}
	for seg := range strings.SplitSeq(key, "/") {
		if strings.HasPrefix(seg, ".") {
			return fmt.Errorf("%w: segment %q starts with a dot", ErrInvalidKey, seg)
		}
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return fmt.Errorf("%w: %q contains a control character or backslash", ErrInvalidKey, key)
		}
	}
	return nil
}
