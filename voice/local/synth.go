package local

import (
	"context"
	"hash/fnv"
	"math"
	"unicode"
)

// sampleRate is the built-in synthesiser's output rate: enough for speech,
// and half the size of CD-rate audio.
const sampleRate = 22050

// phoneKind is how a phone is produced.
type phoneKind int

const (
	silence   phoneKind = iota
	voiced              // glottal pulses through formant filters: vowels, nasals, liquids
	fricative           // filtered noise: s, f, h ...
	plosive             // a short closure, then a burst of noise: p, t, k ...
)

// phone is one sound of the babble.
type phone struct {
	kind   phoneKind
	f1, f2 float64 // formant (voiced) or noise centre (fricative, plosive) frequencies in Hz
	amp    float64
	dur    float64 // seconds
	stress bool    // the first vowel of a word, spoken a little higher and louder
}

// Durations of the phone classes and pauses, in seconds. They make an
// average sentence last a few seconds, like real speech.
const (
	vowelDur      = 0.085
	sonorantDur   = 0.06
	fricativeDur  = 0.075
	plosiveDur    = 0.05
	wordPause     = 0.045
	clausePause   = 0.18
	sentencePause = 0.36
)

// letterPhones maps letters to phones. Vowel formants are textbook averages
// for adult speakers; consonants only approximate their class, since the
// aim is speech-like rhythm and timbre, not intelligibility.
var letterPhones = map[rune]phone{
	'a': {kind: voiced, f1: 730, f2: 1090, amp: 1, dur: vowelDur},
	'e': {kind: voiced, f1: 530, f2: 1840, amp: 1, dur: vowelDur},
	'i': {kind: voiced, f1: 300, f2: 2290, amp: 0.9, dur: vowelDur},
	'o': {kind: voiced, f1: 570, f2: 840, amp: 1, dur: vowelDur},
	'u': {kind: voiced, f1: 320, f2: 870, amp: 0.9, dur: vowelDur},
	'y': {kind: voiced, f1: 300, f2: 2100, amp: 0.8, dur: vowelDur},
	'm': {kind: voiced, f1: 280, f2: 1100, amp: 0.45, dur: sonorantDur},
	'n': {kind: voiced, f1: 280, f2: 1500, amp: 0.45, dur: sonorantDur},
	'l': {kind: voiced, f1: 360, f2: 1300, amp: 0.55, dur: sonorantDur},
	'r': {kind: voiced, f1: 420, f2: 1250, amp: 0.55, dur: sonorantDur},
	'w': {kind: voiced, f1: 300, f2: 650, amp: 0.5, dur: sonorantDur},
	'v': {kind: voiced, f1: 250, f2: 1400, amp: 0.35, dur: sonorantDur},
	'z': {kind: fricative, f1: 4500, amp: 0.3, dur: fricativeDur},
	's': {kind: fricative, f1: 5000, amp: 0.35, dur: fricativeDur},
	'c': {kind: fricative, f1: 4800, amp: 0.3, dur: fricativeDur},
	'x': {kind: fricative, f1: 4000, amp: 0.3, dur: fricativeDur},
	'f': {kind: fricative, f1: 1900, amp: 0.25, dur: fricativeDur},
	'h': {kind: fricative, f1: 1300, amp: 0.2, dur: fricativeDur},
	'j': {kind: fricative, f1: 2800, amp: 0.3, dur: fricativeDur},
	'p': {kind: plosive, f1: 900, amp: 0.5, dur: plosiveDur},
	'b': {kind: plosive, f1: 700, amp: 0.45, dur: plosiveDur},
	't': {kind: plosive, f1: 3500, amp: 0.5, dur: plosiveDur},
	'd': {kind: plosive, f1: 2800, amp: 0.45, dur: plosiveDur},
	'k': {kind: plosive, f1: 2200, amp: 0.5, dur: plosiveDur},
	'q': {kind: plosive, f1: 2000, amp: 0.5, dur: plosiveDur},
	'g': {kind: plosive, f1: 1800, amp: 0.45, dur: plosiveDur},
}

// schwa stands in for letters of other alphabets and for digits, so that
// any text makes some sound.
var schwa = phone{kind: voiced, f1: 500, f2: 1500, amp: 0.9, dur: vowelDur}

// pitchFor derives a stable base pitch between 95 and 200 Hz from a voice
// id, so that different cloned voices sound different in development.
func pitchFor(voiceID string) float64 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(voiceID))
	return 95 + float64(h.Sum32()%105)
}

// sentence is a run of phones spoken with one intonation contour.
type sentence struct {
	phones   []phone
	question bool
}

// parse turns text into sentences of phones, with pauses for spaces and
// punctuation.
func parse(text string) []sentence {
	var out []sentence
	var cur sentence
	inWord := false
	pause := func(d float64) {
		inWord = false
		if n := len(cur.phones); n > 0 && cur.phones[n-1].kind == silence {
			cur.phones[n-1].dur = max(cur.phones[n-1].dur, d)
			return
		}
		if len(cur.phones) > 0 {
			cur.phones = append(cur.phones, phone{kind: silence, dur: d})
		}
	}
	endSentence := func(question bool) {
		pause(sentencePause)
		if len(cur.phones) > 0 {
			cur.question = question
			out = append(out, cur)
		}
		cur = sentence{}
	}
	for _, r := range text {
		r = unicode.ToLower(r)
		switch {
		case r == '.' || r == '!' || r == '…' || r == '\n':
			endSentence(false)
		case r == '?':
			endSentence(true)
		case r == ',' || r == ';' || r == ':' || r == '—' || r == '–' || r == '(' || r == ')':
			pause(clausePause)
		case unicode.IsSpace(r) || r == '-':
			pause(wordPause)
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			ph, ok := letterPhones[r]
			if !ok {
				ph = schwa
			}
			if !inWord && ph.kind == voiced && ph.amp >= 0.8 {
				ph.stress = true
				inWord = true
			}
			cur.phones = append(cur.phones, ph)
		}
	}
	endSentence(false)
	return out
}

// babble renders text as speech-like audio: glottal pulses shaped by vowel
// formants, noise for fricatives and bursts, pauses at word and sentence
// boundaries, and a falling (or, for questions, rising) pitch per sentence.
// The result depends only on text and base pitch f0.
func babble(ctx context.Context, text string, f0 float64) ([]int16, error) {
	sentences := parse(text)
	var buf []float64
	noise := newNoise(text)
	phase := 0.0
	for si, s := range sentences {
		if si%16 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		for pi, ph := range s.phones {
			n := int(ph.dur * sampleRate)
			progress := float64(pi) / float64(len(s.phones))
			pitch := f0 * (1.12 - 0.25*progress) // declination across the sentence
			if s.question && progress > 0.7 {
				pitch = f0 * (0.9 + 1.2*(progress-0.7))
			}
			if ph.stress {
				pitch *= 1.08
			}
			switch ph.kind {
			case silence:
				buf = append(buf, make([]float64, n)...)
			case voiced:
				buf, phase = renderVoiced(buf, ph, n, pitch, phase)
			case fricative:
				buf = renderNoise(buf, ph, n, noise)
			case plosive:
				closure := n / 2
				buf = append(buf, make([]float64, closure)...)
				buf = renderNoise(buf, ph, n-closure, noise)
			}
		}
	}
	return normalize(buf), nil
}

func renderVoiced(buf []float64, ph phone, n int, pitch, phase float64) ([]float64, float64) {
	r1 := newResonator(ph.f1, 90)
	r2 := newResonator(ph.f2, 120)
	r3 := newResonator(2600, 200)
	amp := ph.amp
	if ph.stress {
		amp *= 1.2
	}
	for i := range n {
		phase += pitch / sampleRate
		phase -= math.Floor(phase)
		src := 1 - 2*phase // falling sawtooth: rich in harmonics, like glottal pulses
		v := r1.step(src) + 0.5*r2.step(src) + 0.15*r3.step(src)
		buf = append(buf, amp*envelope(i, n)*v)
	}
	return buf, phase
}

func renderNoise(buf []float64, ph phone, n int, noise *noise) []float64 {
	r := newResonator(ph.f1, ph.f1/3)
	for i := range n {
		v := r.step(noise.next())
		buf = append(buf, 2*ph.amp*envelope(i, n)*v)
	}
	return buf
}

// envelope fades each phone in and out over 8 ms to avoid clicks.
func envelope(i, n int) float64 {
	const ramp = 0.008 * sampleRate
	e := 1.0
	if f := float64(i) / ramp; f < e {
		e = f
	}
	if f := float64(n-1-i) / ramp; f < e {
		e = f
	}
	return max(e, 0)
}

// normalize scales the signal to 70% of full scale and converts it to
// 16-bit samples.
func normalize(buf []float64) []int16 {
	peak := 0.0
	for _, v := range buf {
		peak = max(peak, math.Abs(v))
	}
	out := make([]int16, len(buf))
	if peak == 0 {
		return out
	}
	scale := 0.7 * math.MaxInt16 / peak
	for i, v := range buf {
		out[i] = int16(math.Round(v * scale))
	}
	return out
}

// resonator is a two-pole filter peaking at one frequency (Klatt, 1980),
// normalised to unit gain at 0 Hz.
type resonator struct{ a, b, c, y1, y2 float64 }

func newResonator(freq, bandwidth float64) *resonator {
	t := 1.0 / sampleRate
	c := -math.Exp(-2 * math.Pi * bandwidth * t)
	b := 2 * math.Exp(-math.Pi*bandwidth*t) * math.Cos(2*math.Pi*freq*t)
	return &resonator{a: 1 - b - c, b: b, c: c}
}

func (r *resonator) step(x float64) float64 {
	y := r.a*x + r.b*r.y1 + r.c*r.y2
	r.y2, r.y1 = r.y1, y
	return y
}

// noise is a small deterministic white-noise generator (xorshift32), so
// that the same text always renders to the same bytes.
type noise struct{ state uint32 }

func newNoise(seed string) *noise {
	h := fnv.New32a()
	_, _ = h.Write([]byte(seed))
	s := h.Sum32()
	if s == 0 {
		s = 1
	}
	return &noise{state: s}
}

func (n *noise) next() float64 {
	n.state ^= n.state << 13
	n.state ^= n.state >> 17
	n.state ^= n.state << 5
	return float64(n.state)/float64(math.MaxUint32)*2 - 1
}
