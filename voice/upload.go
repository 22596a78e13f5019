package voice

import (
	"errors"
	"fmt"
	"mime"
	"strings"
)

// Upload limits from the product contract.
const (
	// MaxUploadBytes is the largest accepted audio file.
	MaxUploadBytes = 10 << 20
	// MaxSamples is the most files one voice sample may consist of.
	MaxSamples = 25
)

// ErrInvalidUpload is wrapped by every error ValidateUpload and
// ValidateSampleCount return, so callers can map them all to one user-input
// error with errors.Is.
var ErrInvalidUpload = errors.New("invalid audio upload")

// Specific upload problems, each wrapping ErrInvalidUpload.
var (
	ErrUnsupportedType = fmt.Errorf("%w: unsupported content type", ErrInvalidUpload)
	ErrFileTooLarge    = fmt.Errorf("%w: file larger than %d MB", ErrInvalidUpload, MaxUploadBytes>>20)
	ErrEmptyFile       = fmt.Errorf("%w: empty file", ErrInvalidUpload)
	ErrFileCount       = fmt.Errorf("%w: a voice sample needs 1 to %d files", ErrInvalidUpload, MaxSamples)
)

// audioTypes are the accepted media types (without parameters). Aliases
// cover what browsers and operating systems actually send for the same
// formats: "audio/mp3" for MP3 files, "audio/x-wav" and friends for WAV, and
// "audio/x-m4a" for Safari's MP4 audio.
var audioTypes = map[string]bool{
	"audio/mpeg":     true,
	"audio/mp3":      true,
	"audio/wav":      true,
	"audio/x-wav":    true,
	"audio/wave":     true,
	"audio/vnd.wave": true,
	"audio/webm":     true,
	"audio/ogg":      true,
	"audio/mp4":      true,
	"audio/x-m4a":    true,
}

// ValidateUpload checks one audio file: its content type is one of the
// supported audio types (parameters such as ";codecs=opus" are allowed), and
// it is neither empty nor larger than MaxUploadBytes. Errors wrap one of
// ErrUnsupportedType, ErrFileTooLarge or ErrEmptyFile, and their message is
// suitable for showing to the user.
func ValidateUpload(f File) error {
	mediaType, _, err := mime.ParseMediaType(f.ContentType)
	if err != nil || !audioTypes[strings.ToLower(mediaType)] {
		return fmt.Errorf("file %q (%q): %w; use MP3, WAV, WebM, Ogg or MP4 audio", f.Name, f.ContentType, ErrUnsupportedType)
	}
	if len(f.Data) == 0 {
		return fmt.Errorf("file %q: %w", f.Name, ErrEmptyFile)
	}
	if len(f.Data) > MaxUploadBytes {
		return fmt.Errorf("file %q: %w", f.Name, ErrFileTooLarge)
	}
	return nil
}

// ValidateSampleCount checks that one voice sample has between 1 and
// MaxSamples files. It takes the count alone so that callers can refuse
// too many uploads before reading any of them; each file then goes through
// ValidateUpload.
func ValidateSampleCount(n int) error {
	if n == 0 || n > MaxSamples {
		return fmt.Errorf("got %d files: %w", n, ErrFileCount)
	}
	return nil
}
