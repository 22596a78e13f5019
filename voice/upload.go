package voice

import (
	"errors"
	"fmt"
	"mime"
	"slices"
	"strings"

	"github.com/gabriel-vasile/mimetype"
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

// ValidateUpload checks one audio file: its declared content type is one
// of the supported audio types (parameters such as ";codecs=opus" are
// allowed) or says nothing (application/octet-stream, as some browsers send
// recordings), it is neither empty nor larger than MaxUploadBytes, and its
// bytes are audio of a supported format (Sniff), whatever it declares.
// Errors wrap one of ErrUnsupportedType, ErrFileTooLarge or ErrEmptyFile,
// and their message is suitable for showing to the user. The returned file
// carries the content type its bytes showed when the declared one names
// another format.
func ValidateUpload(f File) (File, error) {
	mediaType, _, err := mime.ParseMediaType(f.ContentType)
	mediaType = strings.ToLower(mediaType)
	if f.ContentType != "" && (err != nil || !audioTypes[mediaType] && mediaType != "application/octet-stream") {
		return f, fmt.Errorf("file %q (%q): %w; use MP3, WAV, WebM, Ogg or MP4 audio", f.Name, f.ContentType, ErrUnsupportedType)
	}
	if len(f.Data) == 0 {
		return f, fmt.Errorf("file %q: %w", f.Name, ErrEmptyFile)
	}
	if len(f.Data) > MaxUploadBytes {
		return f, fmt.Errorf("file %q: %w", f.Name, ErrFileTooLarge)
	}
	sniffed, ok := Sniff(f.Data)
	if !ok {
		return f, fmt.Errorf("file %q: %w: its content is not MP3, WAV, WebM, Ogg or MP4 audio", f.Name, ErrUnsupportedType)
	}
	if formatOf[mediaType] != formatOf[sniffed] {
		f.ContentType = sniffed
	}
	return f, nil
}

// formatOf maps each accepted media type to its format, so that aliases
// of one format agree.
var formatOf = map[string]string{
	"audio/mpeg": "mp3", "audio/mp3": "mp3",
	"audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav", "audio/vnd.wave": "wav",
	"audio/webm": "webm",
	"audio/ogg":  "ogg",
	"audio/mp4":  "mp4", "audio/x-m4a": "mp4",
}

// sniffed lists, for each format, the types mimetype reports for it (video
// containers included: a WebM or MP4 recording is detected as video until
// its tracks are read) and the media type to use for it.
var sniffed = []struct {
	detected  []string
	mediaType string
}{
	{[]string{"audio/mpeg"}, "audio/mpeg"},
	{[]string{"audio/wav"}, "audio/wav"},
	{[]string{"video/webm", "audio/webm"}, "audio/webm"},
	{[]string{"audio/ogg", "application/ogg", "video/ogg", "audio/opus"}, "audio/ogg"},
	{[]string{"audio/mp4", "video/mp4", "audio/x-m4a", "audio/aac"}, "audio/mp4"},
}

// Sniff recognises a supported audio format from the file's first bytes
// and returns its media type.
func Sniff(data []byte) (mediaType string, ok bool) {
	for m := mimetype.Detect(data); m != nil; m = m.Parent() {
		for _, s := range sniffed {
			if m.Is(s.detected[0]) || slices.ContainsFunc(s.detected[1:], m.Is) {
				return s.mediaType, true
			}
		}
	}
	return "", false
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
