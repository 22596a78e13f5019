// Package wav reads and writes the small subset of RIFF/WAVE that Narrate
// handles: one format chunk and one data chunk. The narration join and the
// local development provider both use it.
package wav

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// File is a parsed WAV file. Both fields alias the parsed bytes.
type File struct {
	// Format is the whole format chunk, its 8-byte header included.
	Format []byte
	// Data is the sample data.
	Data []byte
	// DataOffset is where Data starts in the parsed bytes.
	DataOffset int
}

// ErrNotWAV is wrapped by every error Parse returns.
var ErrNotWAV = errors.New("not a WAV file")

// Parse finds the format and data chunks of b. A data chunk whose declared
// size runs past the end of b, as streaming writers leave it because they
// cannot seek back to fill it in, runs to the end of b.
func Parse(b []byte) (File, error) {
	if len(b) < 12 || !bytes.Equal(b[0:4], []byte("RIFF")) || !bytes.Equal(b[8:12], []byte("WAVE")) {
		return File{}, fmt.Errorf("%w: no RIFF/WAVE header", ErrNotWAV)
	}
	var f File
	for off := 12; off+8 <= len(b); {
		id := string(b[off : off+4])
		size := int(binary.LittleEndian.Uint32(b[off+4 : off+8]))
		body := off + 8
		end := body + size
		if size < 0 || end > len(b) {
			if id != "data" {
				return File{}, fmt.Errorf("%w: chunk %q runs past the end of the file", ErrNotWAV, id)
			}
			end = len(b)
		}
		switch id {
		case "fmt ":
			f.Format = b[off:end]
		case "data":
			f.Data, f.DataOffset = b[body:end], body
		}
		off = end + (end-body)%2 // chunks are padded to even sizes
	}
	if f.Format == nil || f.Data == nil {
		return File{}, fmt.Errorf("%w: missing fmt or data chunk", ErrNotWAV)
	}
	return f, nil
}

// Encode writes a WAV file of the format chunk format (header included)
// and the sample data data, with every size filled in.
func Encode(format, data []byte) []byte {
	out := Header(format, int64(len(data)))
	out = append(out, data...)
	if len(data)%2 == 1 {
		out = append(out, 0)
	}
	return out
}

// Header is the start of a WAV file of the format chunk format (header
// included) whose sample data, dataLen bytes, follows it, with every size
// filled in. A file written as the header, the data and, when dataLen is
// odd, one zero byte of padding is complete, so a file can be streamed
// without holding its data.
func Header(format []byte, dataLen int64) []byte {
	out := make([]byte, 0, 12+len(format)+1+8)
	out = append(out, "RIFF"...)
	out = append(out, 0, 0, 0, 0) // RIFF size, set below
	out = append(out, "WAVE"...)
	out = append(out, format...)
	if len(format)%2 == 1 {
		out = append(out, 0)
	}
	out = append(out, "data"...)
	out = binary.LittleEndian.AppendUint32(out, uint32(dataLen))
	riff := int64(len(out)) - 8 + dataLen + dataLen%2
	binary.LittleEndian.PutUint32(out[4:], uint32(riff))
	return out
}

// PCM16Mono is the format chunk of 16-bit mono PCM at rate samples per
// second.
func PCM16Mono(rate int) []byte {
	b := make([]byte, 0, 24)
	b = append(b, "fmt "...)
	b = binary.LittleEndian.AppendUint32(b, 16)             // chunk size
	b = binary.LittleEndian.AppendUint16(b, 1)              // PCM
	b = binary.LittleEndian.AppendUint16(b, 1)              // mono
	b = binary.LittleEndian.AppendUint32(b, uint32(rate))   // sample rate
	b = binary.LittleEndian.AppendUint32(b, uint32(rate*2)) // byte rate
	b = binary.LittleEndian.AppendUint16(b, 2)              // block align
	b = binary.LittleEndian.AppendUint16(b, 16)             // bits per sample
	return b
}
