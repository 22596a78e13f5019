package local

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// encodeWAV wraps 16-bit mono PCM samples in a canonical 44-byte WAV header.
func encodeWAV(samples []int16, rate int) []byte {
	dataLen := len(samples) * 2
	buf := make([]byte, 44+dataLen)
	copy(buf[0:], "RIFF")
	binary.LittleEndian.PutUint32(buf[4:], uint32(36+dataLen))
	copy(buf[8:], "WAVE")
	copy(buf[12:], "fmt ")
	binary.LittleEndian.PutUint32(buf[16:], 16)             // fmt chunk size
	binary.LittleEndian.PutUint16(buf[20:], 1)              // PCM
	binary.LittleEndian.PutUint16(buf[22:], 1)              // mono
	binary.LittleEndian.PutUint32(buf[24:], uint32(rate))   // sample rate
	binary.LittleEndian.PutUint32(buf[28:], uint32(rate*2)) // byte rate
	binary.LittleEndian.PutUint16(buf[32:], 2)              // block align
	binary.LittleEndian.PutUint16(buf[34:], 16)             // bits per sample
	copy(buf[36:], "data")
	binary.LittleEndian.PutUint32(buf[40:], uint32(dataLen))
	for i, s := range samples {
		binary.LittleEndian.PutUint16(buf[44+2*i:], uint16(s))
	}
	return buf
}

// fixWAVSizes rewrites the RIFF and data chunk sizes of a WAV file to match
// its actual length. espeak-ng writing to a pipe cannot seek back to fill
// them in and leaves placeholders, which some players refuse.
func fixWAVSizes(wav []byte) ([]byte, error) {
	if len(wav) < 12 || !bytes.Equal(wav[0:4], []byte("RIFF")) || !bytes.Equal(wav[8:12], []byte("WAVE")) {
		return nil, errNotWAV
	}
	out := bytes.Clone(wav)
	for off := 12; off+8 <= len(out); {
		id := string(out[off : off+4])
		size := int(binary.LittleEndian.Uint32(out[off+4:]))
		if id == "data" {
			n := len(out) - off - 8
			n -= n % 2 // whole 16-bit samples only
			binary.LittleEndian.PutUint32(out[off+4:], uint32(n))
			out = out[:off+8+n]
			binary.LittleEndian.PutUint32(out[4:], uint32(len(out)-8))
			return out, nil
		}
		next := off + 8 + size + size%2 // chunks are padded to even sizes
		if size < 0 || next <= off || next > len(out) {
			break
		}
		off = next
	}
	return nil, fmt.Errorf("%w: no data chunk", errNotWAV)
}
