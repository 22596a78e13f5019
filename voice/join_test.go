package voice

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/narrate/narrate/voice/internal/wav"
)

// wavChunk is one RIFF chunk of a test file.
type wavChunk struct {
	id   string
	body []byte
	// size overrides the declared size (e.g. 0xFFFFFFFF as streaming
	// writers leave it); 0 declares len(body).
	size uint32
}

func fmtBody(rate uint32, channels uint16) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint16(b[0:], 1)
	binary.LittleEndian.PutUint16(b[2:], channels)
	binary.LittleEndian.PutUint32(b[4:], rate)
	binary.LittleEndian.PutUint32(b[8:], rate*2*uint32(channels))
	binary.LittleEndian.PutUint16(b[12:], 2*channels)
	binary.LittleEndian.PutUint16(b[14:], 16)
	return b
}

func makeWAV(chunks ...wavChunk) []byte {
	out := []byte("RIFF\x00\x00\x00\x00WAVE")
	for _, c := range chunks {
		out = append(out, c.id...)
		size := c.size
		if size == 0 {
			size = uint32(len(c.body))
		}
		out = binary.LittleEndian.AppendUint32(out, size)
		out = append(out, c.body...)
		if len(c.body)%2 == 1 && c.size == 0 {
			out = append(out, 0)
		}
	}
	binary.LittleEndian.PutUint32(out[4:], uint32(len(out)-8))
	return out
}

func wavAudio(data []byte) *Audio {
	return &Audio{Data: data, ContentType: "audio/wav", Extension: "wav", RequestID: "r"}
}

func TestJoinWAV(t *testing.T) {
	t.Parallel()
	format := wavChunk{id: "fmt ", body: fmtBody(22050, 1)}
	parts := []*Audio{
		wavAudio(makeWAV(format, wavChunk{id: "data", body: []byte{1, 0, 2, 0}})),
		// A LIST chunk of odd size before the data, as some encoders write.
		wavAudio(makeWAV(format, wavChunk{id: "LIST", body: []byte("INFOx")}, wavChunk{id: "data", body: []byte{3, 0}})),
		// A streamed file whose data size was never filled in.
		wavAudio(makeWAV(format, wavChunk{id: "data", body: []byte{4, 0, 5, 0}, size: 0xFFFFFFFF})),
	}
	got, err := Join(parts)
	if err != nil {
		t.Fatal(err)
	}
	if got.Extension != "wav" || got.ContentType != "audio/wav" || got.RequestID != "" {
		t.Fatalf("joined = %+v", got)
	}
	want := makeWAV(format, wavChunk{id: "data", body: []byte{1, 0, 2, 0, 3, 0, 4, 0, 5, 0}})
	if !bytes.Equal(got.Data, want) {
		t.Fatalf("joined WAV\n got %v\nwant %v", got.Data, want)
	}
	w, err := wav.Parse(got.Data)
	if err != nil || len(w.Data) != 10 {
		t.Fatalf("joined WAV does not parse back: %v, %d data bytes", err, len(w.Data))
	}
}

func TestJoinMP3(t *testing.T) {
	t.Parallel()
	id3 := func(payload string) []byte {
		// Size 5 as a syncsafe integer, no footer.
		return append([]byte{'I', 'D', '3', 4, 0, 0, 0, 0, 0, byte(len(payload))}, payload...)
	}
	trailer := append([]byte("TAG"), make([]byte, 125)...)
	mp3 := func(b ...[]byte) *Audio {
		return &Audio{Data: bytes.Join(b, nil), ContentType: "audio/mpeg", Extension: "mp3"}
	}
	parts := []*Audio{
		mp3(id3("first"), []byte("frames-1"), trailer),
		mp3(id3("two"), []byte("frames-2")),
		mp3([]byte("frames-3"), trailer),
	}
	got, err := Join(parts)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Join([][]byte{id3("first"), []byte("frames-1frames-2frames-3"), trailer}, nil)
	if !bytes.Equal(got.Data, want) || got.ContentType != "audio/mpeg" {
		t.Fatalf("joined MP3 = %q, want %q", got.Data, want)
	}
}

func TestJoinSinglePartUnchanged(t *testing.T) {
	t.Parallel()
	a := &Audio{Data: []byte("x"), Extension: "mp3"}
	if got, err := Join([]*Audio{a}); err != nil || got != a {
		t.Fatalf("Join(one) = %v, %v", got, err)
	}
}

func TestJoinErrors(t *testing.T) {
	t.Parallel()
	format := wavChunk{id: "fmt ", body: fmtBody(22050, 1)}
	good := wavAudio(makeWAV(format, wavChunk{id: "data", body: []byte{1, 0}}))
	tests := map[string][]*Audio{
		"no parts":          nil,
		"empty part":        {good, wavAudio(nil)},
		"mixed formats":     {good, {Data: []byte("x"), Extension: "mp3"}},
		"other sample rate": {good, wavAudio(makeWAV(wavChunk{id: "fmt ", body: fmtBody(44100, 1)}, wavChunk{id: "data", body: []byte{1, 0}}))},
		"not a WAV":         {good, wavAudio([]byte("RIFX...."))},
		"no data chunk":     {good, wavAudio(makeWAV(format))},
		"unknown format":    {{Data: []byte("x"), Extension: "ogg"}, {Data: []byte("y"), Extension: "ogg"}},
	}
	for name, parts := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := Join(parts); !errors.Is(err, ErrJoin) {
				t.Fatalf("err = %v, want ErrJoin", err)
			}
		})
	}
}
