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

func TestValidateSamples(t *testing.T) {
	t.Parallel()
	good := File{Name: "a.mp3", ContentType: "audio/mpeg", Data: []byte{1}}
	bad := File{Name: "a.txt", ContentType: "text/plain", Data: []byte{1}}
	files := func(n int) []File {
		out := make([]File, n)
		for i := range out {
			out[i] = good
		}
		return out
	}
	tests := []struct {
		name  string
		files []File
		want  error
	}{
		{name: "none", files: nil, want: ErrFileCount},
		{name: "one", files: files(1)},
		{name: "max", files: files(MaxSamples)},
		{name: "too many", files: files(MaxSamples + 1), want: ErrFileCount},
		{name: "one bad", files: append(files(2), bad), want: ErrUnsupportedType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := ValidateSamples(tt.files); !errors.Is(err, tt.want) {
				t.Fatalf("ValidateSamples() = %v, want %v", err, tt.want)
			}
		})
	}
}
