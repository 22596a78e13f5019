package local

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/narrate/narrate/voice"
	"github.com/narrate/narrate/voice/internal/wav"
)

// wavInfo is what parseWAV learns from a WAV file.
type wavInfo struct {
	format, channels, bits uint16
	rate                   uint32
	samples                []int16
}

// parseWAV validates a RIFF/WAVE file chunk by chunk, requiring the sizes in
// the headers to match the data, and returns its format and samples.
func parseWAV(t *testing.T, data []byte) wavInfo {
	t.Helper()
	if len(data) < 12 || string(data[0:4]) != "RIFF" || string(data[8:12]) != "WAVE" {
		t.Fatalf("not a RIFF/WAVE file: % x", data[:min(len(data), 12)])
	}
	if got := binary.LittleEndian.Uint32(data[4:]); int(got) != len(data)-8 {
		t.Fatalf("RIFF size %d, want %d", got, len(data)-8)
	}
	var info wavInfo
	sawFmt := false
	for off := 12; off < len(data); {
		if off+8 > len(data) {
			t.Fatalf("truncated chunk header at %d", off)
		}
		id := string(data[off : off+4])
		size := int(binary.LittleEndian.Uint32(data[off+4:]))
		body := data[off+8:]
		if size > len(body) {
			t.Fatalf("chunk %q size %d exceeds remaining %d bytes", id, size, len(body))
		}
		body = body[:size]
		switch id {
		case "fmt ":
			sawFmt = true
			info.format = binary.LittleEndian.Uint16(body[0:])
			info.channels = binary.LittleEndian.Uint16(body[2:])
			info.rate = binary.LittleEndian.Uint32(body[4:])
			byteRate := binary.LittleEndian.Uint32(body[8:])
			align := binary.LittleEndian.Uint16(body[12:])
			info.bits = binary.LittleEndian.Uint16(body[14:])
			if byteRate != info.rate*uint32(align) || align != info.channels*info.bits/8 {
				t.Fatalf("inconsistent fmt chunk: rate %d byteRate %d align %d", info.rate, byteRate, align)
			}
		case "data":
			if !sawFmt {
				t.Fatal("data chunk before fmt chunk")
			}
			if size%2 != 0 {
				t.Fatalf("data size %d is not whole 16-bit samples", size)
			}
			for i := 0; i+1 < size; i += 2 {
				info.samples = append(info.samples, int16(binary.LittleEndian.Uint16(body[i:])))
			}
		}
		off += 8 + size + size%2
	}
	return info
}

func TestSynthesizeBuiltin(t *testing.T) {
	t.Parallel()
	p := New(Config{EspeakPath: "-"})
	text := "Once upon a time, a little fox lived in the forest. Was he happy?"
	audio, err := p.Synthesize(t.Context(), voice.SynthesisRequest{VoiceID: "local-abc", Text: text})
	if err != nil {
		t.Fatal(err)
	}
	if audio.ContentType != "audio/wav" || audio.Extension != "wav" || !strings.HasPrefix(audio.RequestID, "local-") {
		t.Errorf("audio metadata = %q %q %q", audio.ContentType, audio.Extension, audio.RequestID)
	}
	info := parseWAV(t, audio.Data)
	if info.format != 1 || info.channels != 1 || info.bits != 16 || info.rate != sampleRate {
		t.Fatalf("format = %+v, want 16-bit mono PCM at %d Hz", info, sampleRate)
	}
	seconds := float64(len(info.samples)) / float64(info.rate)
	if seconds < 2 || seconds > 15 {
		t.Errorf("two sentences last %.1f s, want a few seconds each", seconds)
	}

	// Speech-like: loud parts and silent pauses both present.
	var peak int16
	silent := 0
	for _, s := range info.samples {
		peak = max(peak, s, -s)
		if s == 0 {
			silent++
		}
	}
	if peak < 10000 {
		t.Errorf("peak amplitude %d, want clearly audible", peak)
	}
	if silent == 0 || silent == len(info.samples) {
		t.Errorf("%d of %d samples silent, want pauses between words", silent, len(info.samples))
	}

	again, err := p.Synthesize(t.Context(), voice.SynthesisRequest{VoiceID: "local-abc", Text: text})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Data, audio.Data) {
		t.Error("same voice and text gave different audio")
	}
	if again.RequestID == audio.RequestID {
		t.Error("request ids repeat")
	}
	other, err := p.Synthesize(t.Context(), voice.SynthesisRequest{VoiceID: "local-xyz", Text: text})
	if err != nil {
		t.Fatal(err)
	}
	if pitchFor("local-abc") == pitchFor("local-xyz") {
		t.Fatal("test voices have the same pitch; pick other ids")
	}
	if bytes.Equal(other.Data, audio.Data) {
		t.Error("different voices sound the same")
	}
}

func TestSynthesizeRejects(t *testing.T) {
	t.Parallel()
	p := New(Config{EspeakPath: "-", ChunkLimit: 10})
	for _, text := range []string{"", " \n ", "eleven chars"} {
		_, err := p.Synthesize(t.Context(), voice.SynthesisRequest{VoiceID: "v", Text: text})
		if voice.KindOf(err) != voice.KindBadRequest {
			t.Errorf("Synthesize(%q) = %v, want bad request", text, err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := p.Synthesize(ctx, voice.SynthesisRequest{VoiceID: "v", Text: "hello"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Synthesize with canceled context = %v", err)
	}
}

func TestSynthesizeAnyText(t *testing.T) {
	t.Parallel()
	p := New(Config{EspeakPath: "-"})
	for _, text := range []string{"!", "42", "日本語", "a"} {
		audio, err := p.Synthesize(t.Context(), voice.SynthesisRequest{VoiceID: "v", Text: text})
		if err != nil {
			t.Fatalf("Synthesize(%q): %v", text, err)
		}
		parseWAV(t, audio.Data)
	}
}

func TestProviderBasics(t *testing.T) {
	t.Parallel()
	p := New(Config{EspeakPath: "-"})
	if p.Name() != "local" || p.ChunkLimit() != DefaultChunkLimit {
		t.Errorf("name %q limit %d", p.Name(), p.ChunkLimit())
	}
	sample := []voice.File{{Name: "a.wav", ContentType: "audio/wav", Data: []byte{1}}}
	c1, err := p.CloneVoice(t.Context(), "me", sample)
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := p.CloneVoice(t.Context(), "me", sample)
	id1, id2 := c1.VoiceID, c2.VoiceID
	if !strings.HasPrefix(id1, "local-") || id1 == id2 || c1.RequiresVerification {
		t.Errorf("voice ids %q, %q: want distinct local- ids", id1, id2)
	}
	if _, err := p.CloneVoice(t.Context(), "me", nil); voice.KindOf(err) != voice.KindBadRequest {
		t.Errorf("CloneVoice without samples = %v", err)
	}
	if err := p.DeleteVoice(t.Context(), id1); err != nil {
		t.Error(err)
	}
	text, err := p.Transcribe(t.Context(), sample[0])
	if !errors.Is(err, voice.ErrTranscriptionUnsupported) || text != "" {
		t.Errorf("Transcribe() = %q, %v; want ErrTranscriptionUnsupported", text, err)
	}
}

// streamedWAV is a WAV file as a program streaming to a pipe writes it: the
// size fields hold placeholders because it cannot seek back.
func streamedWAV() []byte {
	wav := encodeWAV([]int16{1000, -1000, 2000, -2000}, 22050)
	binary.LittleEndian.PutUint32(wav[4:], 0xFFFFFFFF)
	binary.LittleEndian.PutUint32(wav[40:], 0xFFFFFFFF)
	return wav
}

func TestFixWAVSizes(t *testing.T) {
	t.Parallel()
	fixed, err := fixWAVSizes(streamedWAV())
	if err != nil {
		t.Fatal(err)
	}
	if info := parseWAV(t, fixed); len(info.samples) != 4 {
		t.Errorf("samples = %v", info.samples)
	}
	odd := append(streamedWAV(), 7) // half a sample at the end
	fixed, err = fixWAVSizes(odd)
	if err != nil {
		t.Fatal(err)
	}
	parseWAV(t, fixed)
	for _, bad := range [][]byte{nil, []byte("RIFF....WAVX"), []byte("RIFF\x04\x00\x00\x00WAVE")} {
		if _, err := fixWAVSizes(bad); !errors.Is(err, wav.ErrNotWAV) {
			t.Errorf("fixWAVSizes(%q) = %v, want wav.ErrNotWAV", bad, err)
		}
	}
}

// fakeEspeak writes a shell script that behaves like `espeak-ng --stdout`:
// it checks its arguments, reads the text from stdin and prints a streamed
// WAV file.
func fakeEspeak(t *testing.T, script string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "out.wav"), streamedWAV(), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "espeak-ng")
	script = strings.ReplaceAll(script, "$WAV", filepath.Join(dir, "out.wav"))
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSynthesizeEspeak(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	path := fakeEspeak(t, `[ "$1" = "--stdout" ] || exit 2
[ "$(cat)" = "-v hello" ] || exit 3
cat "$WAV"
`)
	p := New(Config{EspeakPath: path})
	audio, err := p.Synthesize(t.Context(), voice.SynthesisRequest{VoiceID: "v", Text: "-v hello"})
	if err != nil {
		t.Fatal(err)
	}
	if info := parseWAV(t, audio.Data); len(info.samples) != 4 {
		t.Errorf("espeak output not used: %d samples", len(info.samples))
	}
}

func TestSynthesizeEspeakFailureFallsBack(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	path := fakeEspeak(t, "echo broken >&2\nexit 1\n")
	p := New(Config{EspeakPath: path, Logger: slog.New(slog.DiscardHandler)})
	audio, err := p.Synthesize(t.Context(), voice.SynthesisRequest{VoiceID: "v", Text: "hello there"})
	if err != nil {
		t.Fatal(err)
	}
	if info := parseWAV(t, audio.Data); info.rate != sampleRate || len(info.samples) < sampleRate/2 {
		t.Errorf("fallback audio: rate %d, %d samples", info.rate, len(info.samples))
	}
}
