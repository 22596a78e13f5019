package voice

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestChunk(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		text  string
		limit int
		want  []string
	}{
		{name: "empty", text: "", limit: 10, want: nil},
		{name: "fits", text: "One. Two.", limit: 100, want: []string{"One. Two."}},
		{
			name:  "packs whole sentences",
			text:  "One two. Three four. Five six.",
			limit: 21,
			want:  []string{"One two. Three four. ", "Five six."},
		},
		{
			name:  "whitespace stays with preceding chunk",
			text:  "Aa.  Bb.",
			limit: 5,
			want:  []string{"Aa.  ", "Bb."},
		},
		{
			name:  "prefers sentence over word boundary",
			text:  "Short one. Then a longer sentence",
			limit: 20,
			want:  []string{"Short one. ", "Then a longer ", "sentence"},
		},
		{
			name:  "closing quote belongs to sentence",
			text:  `He said "go." She went.`,
			limit: 16,
			want:  []string{`He said "go." `, "She went."},
		},
		{
			name:  "opening quote starts a word",
			text:  `abc "defg"`,
			limit: 8,
			want:  []string{"abc ", `"defg"`},
		},
		{
			name:  "line break ends a sentence",
			text:  "Title\nBody text here",
			limit: 12,
			want:  []string{"Title\n", "Body text ", "here"},
		},
		{
			name:  "decimal point is not a sentence end",
			text:  "Pi is 3.14 ok. Next",
			limit: 16,
			want:  []string{"Pi is 3.14 ok. ", "Next"},
		},
		{
			name:  "over-long word falls back to runes",
			text:  "abcdefghij",
			limit: 4,
			want:  []string{"abcd", "efgh", "ij"},
		},
		{
			name:  "runes not bytes",
			text:  "héllo wörld",
			limit: 6,
			want:  []string{"héllo ", "wörld"},
		},
		{
			name:  "full-width stop",
			text:  "今日は。「明日」。終わり",
			limit: 6,
			want:  []string{"今日は。", "「明日」。", "終わり"},
		},
		{
			name:  "limit one",
			text:  "ab",
			limit: 1,
			want:  []string{"a", "b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Chunk(tt.text, tt.limit)
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Errorf("Chunk(%q, %d) = %q, want %q", tt.text, tt.limit, got, tt.want)
			}
			checkChunks(t, tt.text, tt.limit, got)
		})
	}
}

func TestChunkPanicsOnBadLimit(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Error("Chunk with limit 0 did not panic")
		}
	}()
	Chunk("text", 0)
}

func TestChunkLongText(t *testing.T) {
	t.Parallel()
	sentence := "The quick brown fox jumps over the lazy dog again and again. "
	text := strings.Repeat(sentence, 500)
	chunks := Chunk(text, 1000)
	checkChunks(t, text, 1000, chunks)
	for i, c := range chunks {
		if !strings.HasSuffix(c, ". ") {
			t.Fatalf("chunk %d does not end at a sentence boundary: %q", i, c[len(c)-20:])
		}
	}
}

func FuzzChunk(f *testing.F) {
	f.Add("Hello there. General Kenobi! You are a bold one?", 10)
	f.Add("a  b\n\nc... d", 1)
	f.Add("今日は。「明日」。終わり", 3)
	f.Add("\xff\xfe invalid utf8. ok", 4)
	f.Add("   ", 2)
	f.Fuzz(func(t *testing.T, text string, limit int) {
		if limit < 1 || limit > 1<<16 {
			t.Skip()
		}
		checkChunks(t, text, limit, Chunk(text, limit))
	})
}

// checkChunks asserts the invariants of Chunk: joining the chunks gives the
// text back, and every chunk is non-empty and within the limit.
func checkChunks(t *testing.T, text string, limit int, chunks []string) {
	t.Helper()
	if got := strings.Join(chunks, ""); got != text {
		t.Fatalf("joined chunks = %q, want %q", got, text)
	}
	for i, c := range chunks {
		if c == "" {
			t.Fatalf("chunk %d is empty", i)
		}
		if n := utf8.RuneCountInString(c); n > limit {
			t.Fatalf("chunk %d has %d runes, limit %d: %q", i, n, limit, c)
		}
	}
}
