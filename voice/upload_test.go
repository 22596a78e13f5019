package voice

import (
	"errors"
	"slices"
	"testing"
)

// headers are the first bytes of a file of each supported format, as
// recorders and encoders write them.
var headers = map[string][]byte{
	"mp3":     append([]byte{0xFF, 0xFB, 0x90, 0x64}, make([]byte, 64)...),
	"mp3 id3": []byte("ID3\x04\x00\x00\x00\x00\x00\x0aTIT2\x00\x00\x00\x01\x00\x00"),
	"wav":     []byte("RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00"),
	"webm":    []byte("\x1A\x45\xDF\xA3\x9F\x42\x86\x81\x01\x42\xF7\x81\x01\x42\xF2\x81\x04\x42\xF3\x81\x08\x42\x82\x84webm\x42\x87\x81\x04"),
	"ogg":     []byte("OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x13OpusHead"),
	"m4a":     []byte("\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00M4A mp42isom\x00\x00\x00\x00"),
	"text":    []byte("RIFF but not really audio"),
	"png":     []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
	"html":    []byte("<html><script>alert(1)</script>"),
}

func TestValidateUpload(t *testing.T) {
	t.Parallel()
	large := append(slices.Clone(headers["wav"]), make([]byte, MaxUploadBytes-len(headers["wav"]))...)
	tests := []struct {
		name string
		file File
		want error
		// as is the content type the file is passed on with.
		as string
	}{
		{name: "mpeg", file: File{Name: "a.mp3", ContentType: "audio/mpeg", Data: headers["mp3"]}, as: "audio/mpeg"},
		{name: "mpeg with ID3", file: File{Name: "a.mp3", ContentType: "audio/mp3", Data: headers["mp3 id3"]}, as: "audio/mp3"},
		{name: "wav", file: File{Name: "a.wav", ContentType: "audio/wav", Data: headers["wav"]}, as: "audio/wav"},
		{name: "x-wav", file: File{Name: "a.wav", ContentType: "audio/x-wav", Data: headers["wav"]}, as: "audio/x-wav"},
		{name: "wave", file: File{Name: "a.wav", ContentType: "audio/wave", Data: headers["wav"]}, as: "audio/wave"},
		{name: "webm with codecs", file: File{Name: "rec", ContentType: "audio/webm;codecs=opus", Data: headers["webm"]}, as: "audio/webm;codecs=opus"},
		{name: "ogg upper case", file: File{Name: "a.ogg", ContentType: "Audio/OGG; codecs=\"opus\"", Data: headers["ogg"]}, as: "Audio/OGG; codecs=\"opus\""},
		{name: "mp4", file: File{Name: "a.m4a", ContentType: "audio/mp4", Data: headers["m4a"]}, as: "audio/mp4"},
		{name: "no type, audio bytes", file: File{Name: "a", Data: headers["ogg"]}, as: "audio/ogg"},
		{name: "octet-stream, audio bytes", file: File{Name: "a", ContentType: "application/octet-stream", Data: headers["wav"]}, as: "audio/wav"},
		{name: "declared mp3, bytes wav", file: File{Name: "a.mp3", ContentType: "audio/mpeg", Data: headers["wav"]}, as: "audio/wav"},
		{name: "declared audio, bytes text", file: File{Name: "a.wav", ContentType: "audio/wav", Data: headers["text"]}, want: ErrUnsupportedType},
		{name: "declared audio, bytes png", file: File{Name: "a.mp3", ContentType: "audio/mpeg", Data: headers["png"]}, want: ErrUnsupportedType},
		{name: "declared audio, bytes html", file: File{Name: "a.ogg", ContentType: "audio/ogg", Data: headers["html"]}, want: ErrUnsupportedType},
		{name: "video", file: File{Name: "a.mp4", ContentType: "video/mp4", Data: headers["m4a"]}, want: ErrUnsupportedType},
		{name: "text", file: File{Name: "a.txt", ContentType: "text/plain", Data: headers["wav"]}, want: ErrUnsupportedType},
		{name: "malformed type", file: File{Name: "a", ContentType: "audio/", Data: headers["wav"]}, want: ErrUnsupportedType},
		{name: "flac", file: File{Name: "a.flac", ContentType: "audio/flac", Data: headers["wav"]}, want: ErrUnsupportedType},
		{name: "empty", file: File{Name: "a.mp3", ContentType: "audio/mpeg"}, want: ErrEmptyFile},
		{name: "at limit", file: File{Name: "a.wav", ContentType: "audio/wav", Data: large}, as: "audio/wav"},
		{name: "too large", file: File{Name: "a.wav", ContentType: "audio/wav", Data: append(large, 0)}, want: ErrFileTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ValidateUpload(tt.file)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ValidateUpload() = %v, want %v", err, tt.want)
			}
			if tt.want != nil && !errors.Is(err, ErrInvalidUpload) {
				t.Errorf("error %v does not wrap ErrInvalidUpload", err)
			}
			if tt.want == nil && got.ContentType != tt.as {
				t.Errorf("content type %q, want %q", got.ContentType, tt.as)
			}
		})
	}
}

func TestValidateSampleCount(t *testing.T) {
	t.Parallel()
	for n, want := range map[int]error{0: ErrFileCount, 1: nil, MaxSamples: nil, MaxSamples + 1: ErrFileCount} {
		if err := ValidateSampleCount(n); !errors.Is(err, want) {
			t.Errorf("ValidateSampleCount(%d) = %v, want %v", n, err, want)
		}
	}
}
