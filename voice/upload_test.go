package voice

import (
	"errors"
	"testing"
)

func TestValidateUpload(t *testing.T) {
	t.Parallel()
	audio := []byte("not really audio, but the type is what is checked")
	tests := []struct {
		name string
		file File
		want error
	}{
		{name: "mpeg", file: File{Name: "a.mp3", ContentType: "audio/mpeg", Data: audio}},
		{name: "wav", file: File{Name: "a.wav", ContentType: "audio/wav", Data: audio}},
		{name: "x-wav", file: File{Name: "a.wav", ContentType: "audio/x-wav", Data: audio}},
		{name: "wave", file: File{Name: "a.wav", ContentType: "audio/wave", Data: audio}},
		{name: "webm with codecs", file: File{Name: "rec", ContentType: "audio/webm;codecs=opus", Data: audio}},
		{name: "ogg upper case", file: File{Name: "a.ogg", ContentType: "Audio/OGG; codecs=\"opus\"", Data: audio}},
		{name: "mp4", file: File{Name: "a.m4a", ContentType: "audio/mp4", Data: audio}},
		{name: "video", file: File{Name: "a.mp4", ContentType: "video/mp4", Data: audio}, want: ErrUnsupportedType},
		{name: "text", file: File{Name: "a.txt", ContentType: "text/plain", Data: audio}, want: ErrUnsupportedType},
		{name: "no type", file: File{Name: "a", Data: audio}, want: ErrUnsupportedType},
		{name: "malformed type", file: File{Name: "a", ContentType: "audio/", Data: audio}, want: ErrUnsupportedType},
		{name: "flac", file: File{Name: "a.flac", ContentType: "audio/flac", Data: audio}, want: ErrUnsupportedType},
		{name: "empty", file: File{Name: "a.mp3", ContentType: "audio/mpeg"}, want: ErrEmptyFile},
		{name: "at limit", file: File{Name: "a.mp3", ContentType: "audio/mpeg", Data: make([]byte, MaxUploadBytes)}},
		{name: "too large", file: File{Name: "a.mp3", ContentType: "audio/mpeg", Data: make([]byte, MaxUploadBytes+1)}, want: ErrFileTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := ValidateUpload(tt.file)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ValidateUpload() = %v, want %v", err, tt.want)
			}
			if tt.want != nil && !errors.Is(err, ErrInvalidUpload) {
				t.Errorf("error %v does not wrap ErrInvalidUpload", err)
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
