package wav

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func TestEncodeParseRoundTrip(t *testing.T) {
	t.Parallel()
	for _, data := range [][]byte{{}, {1, 0, 2, 0}, {1, 2, 3}} {
		b := Encode(PCM16Mono(22050), data)
		if got := binary.LittleEndian.Uint32(b[4:]); int(got) != len(b)-8 {
			t.Errorf("RIFF size %d, file %d bytes", got, len(b))
		}
		if len(b)%2 != 0 {
			t.Errorf("%d bytes of data: file of odd length %d", len(data), len(b))
		}
		f, err := Parse(b)
		if err != nil {
			t.Fatalf("Parse(Encode(%v)): %v", data, err)
		}
		if !bytes.Equal(f.Data, data) || !bytes.Equal(f.Format, PCM16Mono(22050)) {
			t.Errorf("round trip of %v = %+v", data, f)
		}
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	streamed := Encode(PCM16Mono(8000), []byte{1, 0, 2, 0})
	binary.LittleEndian.PutUint32(streamed[40:], 0xFFFFFFFF)
	if f, err := Parse(streamed); err != nil || !bytes.Equal(f.Data, []byte{1, 0, 2, 0}) {
		t.Errorf("streamed file: %+v, %v; want the data up to the end", f, err)
	}
	overlong := bytes.Clone(streamed)
	binary.LittleEndian.PutUint32(overlong[16:], 0xFFFF) // fmt chunk size
	for name, b := range map[string][]byte{
		"empty":            nil,
		"RIFX":             []byte("RIFX\x04\x00\x00\x00WAVE"),
		"no chunks":        []byte("RIFF\x04\x00\x00\x00WAVE"),
		"fmt past the end": overlong,
	} {
		if _, err := Parse(b); !errors.Is(err, ErrNotWAV) {
			t.Errorf("%s: err = %v, want ErrNotWAV", name, err)
		}
	}
}
