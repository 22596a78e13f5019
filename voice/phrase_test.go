package voice

import (
	"strings"
	"testing"
)

func TestPhrase(t *testing.T) {
	t.Parallel()
	seen := make(map[string]bool)
	for range 50 {
		p := Phrase()
		words := strings.Split(p, " ")
		if len(words) != PhraseWords {
			t.Fatalf("Phrase() = %q, want %d words", p, PhraseWords)
		}
		distinct := make(map[string]bool)
		for _, w := range words {
			if distinct[w] {
				t.Fatalf("Phrase() = %q repeats %q", p, w)
			}
			distinct[w] = true
		}
		if ok, detail := MatchPhrase(p, p); !ok {
			t.Fatalf("MatchPhrase(%q, itself) = false, %q", p, detail)
		}
		seen[p] = true
	}
	// 50 draws of 6 words from 200 colliding would mean the randomness is broken.
	if len(seen) < 50 {
		t.Errorf("50 phrases had only %d distinct values", len(seen))
	}
}

func TestPhraseWordList(t *testing.T) {
	t.Parallel()
	seen := make(map[string]bool)
	for _, w := range phraseWordList {
		if seen[w] {
			t.Errorf("word %q is listed twice", w)
		}
		seen[w] = true
		if got := normalizeWords(w); len(got) != 1 || got[0] != w {
			t.Errorf("word %q does not survive normalisation: %q", w, got)
		}
	}
	if len(phraseWordList) < 150 {
		t.Errorf("word list has %d words, want at least 150", len(phraseWordList))
	}
}

func TestMatchPhrase(t *testing.T) {
	t.Parallel()
	const phrase = "copper garden river candle morning yellow"
	tests := []struct {
		name       string
		phrase     string
		transcript string
		want       bool
		detail     string // substring expected in the detail on mismatch
	}{
		{name: "exact", phrase: phrase, transcript: phrase, want: true},
		{name: "case and punctuation", phrase: phrase, transcript: "Copper, garden. RIVER -- candle; morning... Yellow!", want: true},
		{name: "apostrophes dropped", phrase: "don't stop", transcript: "Dont stop.", want: true},
		{name: "one substituted word in six", phrase: phrase, transcript: "copper garden liver candle morning yellow", want: true},
		{name: "one missing word in six", phrase: phrase, transcript: "copper garden candle morning yellow", want: true},
		{name: "one extra word in six", phrase: phrase, transcript: "um copper garden river candle morning yellow", want: true},
		{name: "two substituted words", phrase: phrase, transcript: "copper garden liver candle mourning yellow", want: false,
			detail: `heard "liver" instead of "river"; heard "mourning" instead of "morning"`},
		{name: "two missing words", phrase: phrase, transcript: "copper garden river candle", want: false,
			detail: `missed "morning"; missed "yellow"`},
		{name: "extra and wrong", phrase: phrase, transcript: "hello copper garden river candle morning fellow", want: false,
			detail: `heard extra word "hello"`},
		{name: "four words allow none", phrase: "copper garden river candle", transcript: "copper garden liver candle", want: false,
			detail: "at most 0 words may differ"},
		{name: "ten words allow two", phrase: phrase + " apple bridge cloud dragon",
			transcript: "copper garden liver candle morning yellow apple bridge crowd dragon", want: true},
		{name: "ten words reject three", phrase: phrase + " apple bridge cloud dragon",
			transcript: "copper garden liver candle morning yellow apple fridge crowd dragon", want: false,
			detail: "in 3 places"},
		{name: "different order", phrase: phrase, transcript: "yellow morning candle river garden copper", want: false},
		{name: "empty transcript", phrase: phrase, transcript: " ... ", want: false, detail: "no words were recognised"},
		{name: "empty phrase", phrase: "", transcript: "anything", want: false, detail: "no phrase"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ok, detail := MatchPhrase(tt.phrase, tt.transcript)
			if ok != tt.want {
				t.Fatalf("MatchPhrase(%q, %q) = %v (%q), want %v", tt.phrase, tt.transcript, ok, detail, tt.want)
			}
			if ok && detail != "" {
				t.Errorf("matching detail = %q, want empty", detail)
			}
			if !ok && detail == "" {
				t.Error("mismatch has no detail")
			}
			if !strings.Contains(detail, tt.detail) {
				t.Errorf("detail = %q, want it to contain %q", detail, tt.detail)
			}
		})
	}
}

func TestAllowedPhraseErrors(t *testing.T) {
	t.Parallel()
	for n, want := range map[int]int{0: 0, 4: 0, 5: 1, 6: 1, 9: 1, 10: 2} {
		if got := AllowedPhraseErrors(n); got != want {
			t.Errorf("AllowedPhraseErrors(%d) = %d, want %d", n, got, want)
		}
	}
}
