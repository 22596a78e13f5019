package voice

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

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

// join prepares audios as the parts of one narration and streams the
// joined file from the prepared bytes, as the worker does from storage.
func join(audios []*Audio) ([]byte, []Part, [][]byte, error) {
	parts := make([]Part, len(audios))
	stored := make([][]byte, len(audios))
	for i, a := range audios {
		var err error
		if stored[i], parts[i], err = PreparePart(a, i); err != nil {
			return nil, nil, nil, err
		}
		if parts[i].Size != int64(len(stored[i])) {
			return nil, nil, nil, errors.New("Size is not the stored length")
		}
	}
	var out bytes.Buffer
	err := WriteJoined(&out, parts, func(i int) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(stored[i])), nil
	})
	return out.Bytes(), parts, stored, err
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
	got, prepared, stored, err := join(parts)
	if err != nil {
		t.Fatal(err)
	}
	want := makeWAV(format, wavChunk{id: "data", body: []byte{1, 0, 2, 0, 3, 0, 4, 0, 5, 0}})
	if !bytes.Equal(got, want) {
		t.Fatalf("joined WAV\n got %v\nwant %v", got, want)
	}
	w, err := wav.Parse(got)
	if err != nil || len(w.Data) != 10 {
		t.Fatalf("joined WAV does not parse back: %v, %d data bytes", err, len(w.Data))
	}
	// Each part is stored as it came, playable on its own; 22050 samples
	// of 2 bytes a second make 2 bytes last 1/22050 s.
	for i, p := range prepared {
		if !bytes.Equal(stored[i], parts[i].Data) || p.ContentType != "audio/wav" {
			t.Errorf("part %d stored %v, want the provider's file", i+1, stored[i])
		}
	}
	if d := prepared[1].Duration; d != time.Second/22050 {
		t.Errorf("part 2 lasts %v, want 1/22050 s", d)
	}
}

func TestJoinWAVOddLength(t *testing.T) {
	t.Parallel()
	format := wavChunk{id: "fmt ", body: fmtBody(8000, 1)}
	got, _, _, err := join([]*Audio{
		wavAudio(makeWAV(format, wavChunk{id: "data", body: []byte{1, 2, 3}})),
		wavAudio(makeWAV(format, wavChunk{id: "data", body: []byte{4, 5}})),
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := makeWAV(format, wavChunk{id: "data", body: []byte{1, 2, 3, 4, 5}}); !bytes.Equal(got, want) {
		t.Fatalf("joined WAV\n got %v\nwant %v", got, want)
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
	got, _, stored, err := join(parts)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Join([][]byte{id3("first"), []byte("frames-1frames-2frames-3")}, nil)
	if !bytes.Equal(got, want) {
		t.Fatalf("joined MP3 = %q, want %q", got, want)
	}
	// The stored MP3 parts concatenate to the joined file.
	if cat := bytes.Join(stored, nil); !bytes.Equal(cat, got) {
		t.Fatalf("parts concatenate to %q, not the joined %q", cat, got)
	}
}

// mp3Frames makes n MPEG-1 layer III frames of 128 kbit/s at 44.1 kHz,
// 417 bytes each without padding.
func mp3Frames(n int) []byte {
	frame := make([]byte, 417)
	frame[0], frame[1], frame[2], frame[3] = 0xFF, 0xFB, 0x90, 0x64
	return bytes.Repeat(frame, n)
}

func TestMP3Duration(t *testing.T) {
	t.Parallel()
	tag := []byte{'I', 'D', '3', 4, 0, 0, 0, 0, 0, 2, 'x', 'y'}
	tests := []struct {
		name string
		data []byte
		want time.Duration
	}{
		// 1152 samples a frame at 44.1 kHz: 100 frames are 2.612 s.
		{name: "frames", data: mp3Frames(100), want: 100 * 1152 * time.Second / 44100},
		{name: "tagged", data: append(tag, mp3Frames(10)...), want: 10 * 1152 * time.Second / 44100},
		{name: "not mp3", data: []byte("MP3[some text]"), want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, p, err := PreparePart(&Audio{Data: tt.data, ContentType: "audio/mpeg", Extension: "mp3"}, 0)
			if err != nil || p.Duration != tt.want {
				t.Errorf("duration = %v (%v), want %v", p.Duration, err, tt.want)
			}
		})
	}
}

func TestJoinErrors(t *testing.T) {
	t.Parallel()
	format := wavChunk{id: "fmt ", body: fmtBody(22050, 1)}
	good := wavAudio(makeWAV(format, wavChunk{id: "data", body: []byte{1, 0}}))
	tests := map[string][]*Audio{
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
			if _, _, _, err := join(parts); !errors.Is(err, ErrJoin) {
				t.Fatalf("err = %v, want ErrJoin", err)
			}
		})
	}
	if err := WriteJoined(io.Discard, nil, nil); !errors.Is(err, ErrJoin) {
		t.Fatalf("WriteJoined(no parts) = %v, want ErrJoin", err)
	}
}
