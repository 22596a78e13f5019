package voice

import (
	"unicode"
	"unicode/utf8"
)

// Chunk splits text at sentence boundaries into pieces of at most limit characters (runes),
// in order, losing nothing: strings.Join(chunks, "") == text (whitespace kept with the
// preceding chunk). Falls back to word, then rune boundaries for over-long sentences.
//
// Sentences are packed greedily, so a chunk holds as many whole sentences as
// fit. A sentence ends after '.', '!', '?', '…' or ';' (and any closing
// quotes or brackets) followed by whitespace, after a full-width stop such as
// '。', or at a line break. Invalid UTF-8 bytes count as one rune each and are kept as they are.
//
// Chunk returns nil for empty text and panics when limit is not positive. A
// chunk can consist of whitespace alone only when text holds a whitespace
// run that cannot share a chunk with a neighbouring word; callers that send
// chunks to a provider should skip such chunks.
func Chunk(text string, limit int) []string {
	if limit < 1 {
		panic("voice: Chunk limit must be positive")
	}
	if text == "" {
		return nil
	}
	if utf8.RuneCountInString(text) <= limit {
		return []string{text}
	}

	runes := decode(text)
	n := len(runes)
	sentence, word := breaks(runes)

	var chunks []string
	p := 0
	for n-p > limit {
		end := p + limit
		b := lastBreak(sentence, p, end)
		if b < 0 {
			b = lastBreak(word, p, end)
		}
		if b < 0 {
			b = end
		}
		chunks = append(chunks, text[runes[p].off:runes[b].off])
		p = b
	}
	return append(chunks, text[runes[p].off:])
}

// decodedRune is a rune and its byte offset in the source text.
type decodedRune struct {
	r   rune
	off int
}

// decode returns the runes of s with their byte offsets. An invalid byte
// decodes as utf8.RuneError of width one, so slicing s at the offsets keeps
// every original byte.
func decode(s string) []decodedRune {
	out := make([]decodedRune, 0, len(s))
	for off := 0; off < len(s); {
		r, w := utf8.DecodeRuneInString(s[off:])
		out = append(out, decodedRune{r: r, off: off})
		off += w
	}
	return out
}

// breaks marks the rune indexes where a chunk may start. sentence[i] is true
// when rune i starts a new sentence; word[i] is true when rune i starts a
// word after whitespace. Index 0 is never a break because a chunk must not
// be empty.
func breaks(runes []decodedRune) (sentence, word []bool) {
	sentence = make([]bool, len(runes))
	word = make([]bool, len(runes))
	for i := 1; i < len(runes); i++ {
		prev, cur := runes[i-1].r, runes[i].r
		if unicode.IsSpace(cur) {
			continue
		}
		if !unicode.IsSpace(prev) {
			// Full-width stops end a sentence without any whitespace, but
			// the closing quotes after one stay with it.
			if isCloser(cur) {
				continue
			}
			j := i - 1
			for j >= 0 && isCloser(runes[j].r) {
				j--
			}
			sentence[i] = j >= 0 && isWideStop(runes[j].r)
			continue
		}
		word[i] = true

		// Walk back over the whitespace run: a line break or a sentence
		// terminator (possibly followed by closing quotes) before it makes
		// this a sentence start.
		j := i - 1
		newline := false
		for j >= 0 && unicode.IsSpace(runes[j].r) {
			if runes[j].r == '\n' || runes[j].r == '\r' {
				newline = true
			}
			j--
		}
		for j >= 0 && isCloser(runes[j].r) {
			j--
		}
		sentence[i] = newline || (j >= 0 && isTerminator(runes[j].r))
	}
	return sentence, word
}

// lastBreak returns the largest index b in (from, to] with marks[b] set, or
// -1 when there is none. Index to itself qualifies because the chunk
// [from, to) is then exactly at the limit.
func lastBreak(marks []bool, from, to int) int {
	for b := to; b > from; b-- {
		if marks[b] {
			return b
		}
	}
	return -1
}

func isTerminator(r rune) bool {
	switch r {
	case '.', '!', '?', '…', ';':
		return true
	}
	return isWideStop(r)
}

// isWideStop reports whether r is a full-width sentence terminator, which
// ends a sentence even without following whitespace.
func isWideStop(r rune) bool {
	switch r {
	case '。', '！', '？', '｡':
		return true
	}
	return false
}

func isCloser(r rune) bool {
	switch r {
	case '"', '\'', ')', ']', '}', '»', '”', '’', '」', '』', '）':
		return true
	}
	return false
}
