package voice

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/narrate/narrate/voice/internal/wav"
)

// ErrJoin is wrapped by the errors PreparePart and WriteJoined return.
var ErrJoin = errors.New("join audio")

// Part describes one stored part of a narration: what it holds and which
// of its bytes the joined file takes. It is small, so a narration of any
// length keeps the Parts of all its chunks, never their audio: the joined
// file is streamed from the stored parts by WriteJoined.
type Part struct {
	// ContentType and Extension are those of the provider's audio.
	ContentType string
	Extension   string
	// Size is the length of the stored part.
	Size int64
	// PayloadOffset and PayloadLen locate, in the stored part, the bytes
	// the joined file takes from it: the whole of an MP3 part, the sample
	// data of a WAV part.
	PayloadOffset int64
	PayloadLen    int64
	// Format is a WAV part's format chunk (header included); nil for MP3.
	Format []byte
	// Duration is how long the part plays; 0 when it cannot be told.
	Duration time.Duration
}

// PreparePart turns the audio of chunk index of a narration into the bytes
// to store as that part, playable on its own, and their description.
//
// MP3 is a stream of self-contained frames, so MP3 parts are stored such
// that concatenating them gives the joined file: an ID3v2 tag is kept only
// at the start of the first part, and ID3v1 tags (128 bytes at the end) are
// dropped, since a tag in the middle of the stream is noise to a decoder.
// WAV parts are stored as they are; the joined file takes their sample
// data behind one header.
func PreparePart(a *Audio, index int) ([]byte, Part, error) {
	if a == nil || len(a.Data) == 0 {
		return nil, Part{}, fmt.Errorf("%w: part %d is empty", ErrJoin, index+1)
	}
	p := Part{ContentType: a.ContentType, Extension: a.Extension}
	data := a.Data
	switch a.Extension {
	case "mp3":
		if index > 0 {
			data = data[id3v2Len(data):]
		}
		if len(data) >= 128 && bytes.Equal(data[len(data)-128:len(data)-125], []byte("TAG")) {
			data = data[:len(data)-128]
		}
		p.PayloadLen = int64(len(data))
		p.Duration = mp3Duration(data)
	case "wav":
		f, err := wav.Parse(data)
		if err != nil {
			return nil, Part{}, fmt.Errorf("%w: part %d: %w", ErrJoin, index+1, err)
		}
		p.Format = bytes.Clone(f.Format)
		p.PayloadOffset, p.PayloadLen = int64(f.DataOffset), int64(len(f.Data))
		if rate := wavByteRate(p.Format); rate > 0 {
			p.Duration = time.Duration(p.PayloadLen) * time.Second / time.Duration(rate)
		}
	default:
		return nil, Part{}, fmt.Errorf("%w: cannot join %q audio", ErrJoin, a.Extension)
	}
	p.Size = int64(len(data))
	return data, p, nil
}

// WriteJoined writes the joined file of parts to w, in order, reading each
// stored part through open one at a time, so that memory use does not
// depend on the narration's length. The parts must share one format (for
// WAV, one sample format).
func WriteJoined(w io.Writer, parts []Part, open func(i int) (io.ReadCloser, error)) error {
	if len(parts) == 0 {
		return fmt.Errorf("%w: no parts", ErrJoin)
	}
	first := parts[0]
	var total int64
	for i, p := range parts {
		if p.Extension != first.Extension {
			return fmt.Errorf("%w: part %d is %q, part 1 is %q", ErrJoin, i+1, p.Extension, first.Extension)
		}
		if p.Extension == "wav" && (len(p.Format) < 8 || !bytes.Equal(p.Format[8:], first.Format[8:])) {
			return fmt.Errorf("%w: part %d has a different sample format", ErrJoin, i+1)
		}
		total += p.PayloadLen
	}
	if first.Extension == "wav" {
		if _, err := w.Write(wav.Header(first.Format, total)); err != nil {
			return err
		}
	}
	for i, p := range parts {
		if err := copyPayload(w, p, func() (io.ReadCloser, error) { return open(i) }); err != nil {
			return fmt.Errorf("part %d: %w", i+1, err)
		}
	}
	if first.Extension == "wav" && total%2 == 1 {
		if _, err := w.Write([]byte{0}); err != nil {
			return err
		}
	}
	return nil
}

// copyPayload copies the payload of one stored part to w.
func copyPayload(w io.Writer, p Part, open func() (io.ReadCloser, error)) error {
	r, err := open()
	if err != nil {
		return err
	}
	defer r.Close()
	if _, err := io.CopyN(io.Discard, r, p.PayloadOffset); err != nil {
		return fmt.Errorf("skip to the payload: %w", err)
	}
	if n, err := io.CopyN(w, r, p.PayloadLen); err != nil {
		return fmt.Errorf("copy payload (%d of %d bytes): %w", n, p.PayloadLen, err)
	}
	return nil
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

// wavByteRate reads the byte rate of a WAV format chunk, 0 when absent.
func wavByteRate(format []byte) int64 {
	if len(format) < 20 {
		return 0
	}
	return int64(binary.LittleEndian.Uint32(format[16:20]))
}

// MPEG audio frame header tables (ISO 11172-3, ISO 13818-3), layer III.
var (
	mp3Bitrates = [2][16]int{ // kbit/s; [0] MPEG-1, [1] MPEG-2 and 2.5
		{0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0},
		{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0},
	}
	mp3Rates = [4][3]int{ // by version bits: 2.5, reserved, 2, 1
		{11025, 12000, 8000}, {}, {22050, 24000, 16000}, {44100, 48000, 32000},
	}
)

// mp3Duration adds up the layer III frames of an MP3 stream (after any
// ID3v2 tag); 0 when it holds none, as for audio that is not MP3.
func mp3Duration(b []byte) time.Duration {
	var samples, rate int64
	for off := id3v2Len(b); off+4 <= len(b); {
		h := b[off : off+4]
		version, layer := h[1]>>3&3, h[1]>>1&3
		bitrateIdx, rateIdx, padding := int(h[2]>>4), int(h[2]>>2&3), int(h[2]>>1&1)
		if h[0] != 0xFF || h[1]&0xE0 != 0xE0 || version == 1 || layer != 1 || rateIdx == 3 ||
			bitrateIdx == 0 || bitrateIdx == 15 {
			break // not (or no longer) a layer III frame
		}
		mpeg1 := version == 3
		table, perFrame, coef := 1, int64(576), 72
		if mpeg1 {
			table, perFrame, coef = 0, 1152, 144
		}
		r := mp3Rates[version][rateIdx]
		size := coef*mp3Bitrates[table][bitrateIdx]*1000/r + padding
		if size < 4 {
			break
		}
		samples, rate = samples+perFrame, int64(r)
		off += size
	}
	if rate == 0 {
		return 0
	}
	return time.Duration(samples) * time.Second / time.Duration(rate)
}
