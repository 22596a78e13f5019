package local

import (
	"encoding/binary"

	"github.com/narrate/narrate/voice/internal/wav"
)

// encodeWAV wraps 16-bit mono PCM samples in a canonical 44-byte WAV header.
func encodeWAV(samples []int16, rate int) []byte {
	data := make([]byte, 0, 2*len(samples))
	for _, s := range samples {
		data = binary.LittleEndian.AppendUint16(data, uint16(s))
	}
	return wav.Encode(wav.PCM16Mono(rate), data)
}

// fixWAVSizes rewrites the RIFF and data chunk sizes of a WAV file to match
// its actual length. espeak-ng writing to a pipe cannot seek back to fill
// them in and leaves placeholders, which some players refuse.
func fixWAVSizes(b []byte) ([]byte, error) {
	f, err := wav.Parse(b)
	if err != nil {
		return nil, err
	}
	// Whole 16-bit samples only: a pipe may end in the middle of one.
	return wav.Encode(f.Format, f.Data[:len(f.Data)-len(f.Data)%2]), nil
}
