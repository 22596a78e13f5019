package voice

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/narrate/narrate/voice/internal/wav"
)

// ErrJoin is wrapped by the errors Join returns.
var ErrJoin = errors.New("join audio")

// Join merges the chunks of one narration, in order, into a single file of
// their common format.
//
// MP3 is a stream of self-contained frames, so MP3 parts are concatenated;
// an ID3v2 tag at the start of a part other than the first, and an ID3v1
// tag at the end of a part other than the last, are dropped, since a tag in
// the middle of the stream is noise to a decoder. WAV parts must share one
// sample format: their PCM data is concatenated behind the first part's
// format chunk, and the RIFF and data sizes are written for the result.
//
// The result carries the parts' content type and extension and no request
// id. A single part is returned as it is.
func Join(parts []*Audio) (*Audio, error) {
	if len(parts) == 0 {
		return nil, fmt.Errorf("%w: no parts", ErrJoin)
	}
	first := parts[0]
	for i, p := range parts {
		if p == nil || len(p.Data) == 0 {
			return nil, fmt.Errorf("%w: part %d is empty", ErrJoin, i+1)
		}
		if p.Extension != first.Extension {
			return nil, fmt.Errorf("%w: part %d is %q, part 1 is %q", ErrJoin, i+1, p.Extension, first.Extension)
		}
	}
	if len(parts) == 1 {
		return first, nil
	}
	var data []byte
	var err error
	switch first.Extension {
	case "mp3":
		data = joinMP3(parts)
	case "wav":
		data, err = joinWAV(parts)
	default:
		return nil, fmt.Errorf("%w: cannot join %q audio", ErrJoin, first.Extension)
	}
	if err != nil {
		return nil, err
	}
	return &Audio{Data: data, ContentType: first.ContentType, Extension: first.Extension}, nil
}

func joinMP3(parts []*Audio) []byte {
	var out bytes.Buffer
	for i, p := range parts {
		data := p.Data
		if i > 0 {
			data = data[id3v2Len(data):]
		}
		if i < len(parts)-1 && len(data) >= 128 && bytes.Equal(data[len(data)-128:len(data)-125], []byte("TAG")) {
			data = data[:len(data)-128]
		}
		out.Write(data)
	}
	return out.Bytes()
}

// id3v2Len returns the length of the ID3v2 tag data starts with, or 0.
// The tag's size is a 28-bit "syncsafe" integer (7 bits per byte) that
// excludes the 10-byte header and the optional 10-byte footer.
func id3v2Len(data []byte) int {
	if len(data) < 10 || !bytes.Equal(data[:3], []byte("ID3")) {
		return 0
	}
	size := 0
	for _, b := range data[6:10] {
		if b&0x80 != 0 {
			return 0
		}
		size = size<<7 | int(b)
	}
	n := 10 + size
	if data[5]&0x10 != 0 { // footer present
		n += 10
	}
	return min(n, len(data))
}

func joinWAV(parts []*Audio) ([]byte, error) {
	var format []byte
	var pcm bytes.Buffer
	for i, p := range parts {
		f, err := wav.Parse(p.Data)
		if err != nil {
			return nil, fmt.Errorf("%w: part %d: %w", ErrJoin, i+1, err)
		}
		if i == 0 {
			format = f.Format
		} else if !bytes.Equal(f.Format[8:], format[8:]) {
			return nil, fmt.Errorf("%w: part %d has a different sample format", ErrJoin, i+1)
		}
		pcm.Write(f.Data)
	}
	return wav.Encode(format, pcm.Bytes()), nil
}
