package worker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/narrate/narrate/voice"
	"github.com/narrate/narrate/voice/local"
)

// longStoryChars is the length of the story TestLongStoryInConstantMemory
// narrates: about as long as the one that took the server to 3 GB when the
// narration was held in memory and joined at the end.
const longStoryChars = 200_000

// maxRSSGrowth is how much the process's peak resident memory may grow
// while it narrates that story.
const maxRSSGrowth = 100 << 20

// procStatus reads a "<name>: <n> kB" line of /proc/self/status in bytes.
func procStatus(t testing.TB, name string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/self/status", name)
	return 0
}

// makeLongStory is text of about n characters in sentences of varied
// length, so that the chunker packs them as it would a real story.
func makeLongStory(n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "Sentence %d of the long night, and the fox %s. ", i, strings.Repeat("ran on ", i%7+1))
	}
	return b.String()[:n]
}

// bulkWAV is the local provider with a synthesiser that costs nothing: each
// chunk becomes a WAV file as large as the local provider's (about 3 KB of
// 22.05 kHz 16-bit audio per character), of a plain tone, so that the test
// measures the narration pipeline rather than the synthesiser.
type bulkWAV struct{ *local.Provider }

func (b bulkWAV) Synthesize(ctx context.Context, req voice.SynthesisRequest) (*voice.Audio, error) {
	const rate = 22050
	n := utf8.RuneCountInString(req.Text) * 3000
	data := make([]byte, 44+n)
	copy(data, "RIFF")
	binary.LittleEndian.PutUint32(data[4:], uint32(36+n))
	copy(data[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(data[16:], 16)
	binary.LittleEndian.PutUint16(data[20:], 1)      // PCM
	binary.LittleEndian.PutUint16(data[22:], 1)      // mono
	binary.LittleEndian.PutUint32(data[24:], rate)   // samples per second
	binary.LittleEndian.PutUint32(data[28:], rate*2) // bytes per second
	binary.LittleEndian.PutUint16(data[32:], 2)      // block align
	binary.LittleEndian.PutUint16(data[34:], 16)     // bits per sample
	copy(data[36:], "data")
	binary.LittleEndian.PutUint32(data[40:], uint32(n))
	for i := 44; i < len(data); i += copy(data[i:], sawtooth) {
	}
	return &voice.Audio{Data: data, ContentType: "audio/wav", Extension: "wav"}, nil
}

// sawtooth is a stretch of 16-bit samples of a tone, so that no page of
// the audio is all zeros (which a store might keep sparse).
var sawtooth = func() []byte {
	b := make([]byte, 64<<10)
	for i := 1; i < len(b); i += 2 {
		b[i] = byte(i / 64 % 32)
	}
	return b
}()

// TestLongStoryInConstantMemory narrates a 200,000-character story with
// WAV audio as large as the local provider's (about 3 KB per character),
// which makes a final file of about 600 MB, and checks that the process's peak
// resident memory (VmHWM, reset before the narration) grows by less than
// 100 MB: the audio goes to storage chunk by chunk and is joined by
// streaming, never held whole. It does not run in parallel with the
// package's other tests, whose memory would count against it.
func TestLongStoryInConstantMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("narrates a long story")
	}
	e := newEnv(t)
	story := makeLongStory(longStoryChars)
	id := e.start(e.story("The Long Night", story))
	provider := bulkWAV{local.New(local.Config{EspeakPath: "-"})}
	w := e.newWorker(func(c *Config) { c.Provider = provider; c.Lease = DefaultLease })

	runtime.GC()
	debug.FreeOSMemory()
	// Writing 5 to clear_refs resets the peak resident set size (VmHWM)
	// to the current one.
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Skipf("cannot reset the peak resident set size: %v", err)
	}
	before := procStatus(t, "VmRSS")
	e.run(w)
	// Only a guard against a hang: hundreds of megabytes written twice and
	// synced take a while on a busy disk.
	var s genState
	e.waitWithin(10*time.Minute, "the long story to complete", func() bool {
		s = e.state(id)
		return s.Status == "completed" || s.Status == "failed"
	})
	peak := procStatus(t, "VmHWM")
	w.stop()

	if s.Status != "completed" {
		t.Fatalf("the narration ended %s: %q", s.Status, s.Logs[len(s.Logs)-1])
	}
	size, _ := s.Metadata["audio_bytes"].(float64)
	growth := peak - before
	t.Logf("narrated %d characters into %d chunks and %.0f MB of audio; RSS %d MB before, peak %d MB, growth %d MB",
		longStoryChars, int(s.Metadata["chunks"].(float64)), size/(1<<20), before>>20, peak>>20, growth>>20)
	if size < 4*maxRSSGrowth {
		t.Fatalf("the narration made %.0f bytes of audio: too little to tell whether it was held in memory", size)
	}
	if growth >= maxRSSGrowth {
		t.Errorf("peak RSS grew by %d MB narrating the story, want under %d MB", growth>>20, maxRSSGrowth>>20)
	}
	// The final file is the parts' audio, whole.
	f, err := os.Open(e.dir + "/" + *s.ResultKey)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := make([]byte, 12)
	if _, err := f.Read(head); err != nil || !bytes.Equal(head[8:12], []byte("WAVE")) {
		t.Errorf("result starts %q (%v), want a WAV file", head, err)
	}
}
