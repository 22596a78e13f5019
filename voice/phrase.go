package voice

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"strings"
	"unicode"
)

// PhraseWords is the number of words in a phrase made by Phrase. Six words
// take a few seconds to read, and the chance of guessing a phrase is about
// one in 200^6.
const PhraseWords = 6

// phraseWordList holds common, concrete English words that are easy to read
// aloud and that speech-to-text spells one way only: no homophones (there,
// their), no numbers (which transcribers write as digits) and no words with
// British and American spellings.
var phraseWordList = [...]string{
	"apple", "arrow", "autumn", "basket", "beach", "bicycle", "blanket", "bottle",
	"bridge", "bright", "brother", "bucket", "butter", "button", "cabin", "camera",
	"candle", "canyon", "carpet", "castle", "chair", "cherry", "chicken", "circle",
	"clever", "cloud", "coffee", "copper", "cotton", "country", "crystal", "curtain",
	"dance", "desert", "diamond", "dinner", "doctor", "dragon", "dream", "eagle",
	"early", "engine", "evening", "family", "farmer", "feather", "field", "finger",
	"forest", "friend", "garden", "gentle", "giant", "ginger", "glass", "golden",
	"grape", "green", "guitar", "hammer", "happy", "pudding", "helmet", "honey",
	"horse", "island", "jacket", "jungle", "kettle", "kitchen", "ladder", "lemon",
	"letter", "light", "lion", "little", "lucky", "market", "meadow", "metal",
	"mirror", "monkey", "morning", "mountain", "music", "narrow", "needle", "number",
	"ocean", "orange", "palace", "paper", "parrot", "pencil", "pepper", "picture",
	"pillow", "planet", "pocket", "purple", "puzzle", "quiet", "rabbit", "river",
	"rocket", "salad", "sandwich", "school", "shadow", "silver", "simple", "sister",
	"smile", "snake", "spider", "spring", "stone", "storm", "summer", "sunset",
	"sweet", "table", "thunder", "ticket", "tiger", "tomato", "travel", "turtle",
	"umbrella", "valley", "velvet", "village", "violin", "wagon", "water", "window",
	"winter", "wizard", "yellow", "zebra", "anchor", "balloon", "banana", "barrel",
	"beaver", "blossom", "breeze", "cactus", "captain", "carrot", "cinnamon", "coconut",
	"cookie", "dolphin", "donkey", "elbow", "falcon", "festival", "garlic", "glacier",
	"hollow", "iceberg", "jelly", "kitten", "lantern", "lizard", "magnet", "maple",
	"melon", "mitten", "noodle", "orchard", "oyster", "panda", "peanut", "pebble",
	"penguin", "pirate", "pumpkin", "rainbow", "ribbon", "saddle", "sailor", "shovel",
	"spoon", "squirrel", "station", "sugar", "tunnel", "trumpet", "walnut", "whistle",
	"willow", "cobweb", "wooden", "harvest", "marble", "compass", "lobster", "comet",
}

// Phrase returns a random, readable verification phrase of PhraseWords
// distinct common English words separated by single spaces, for example
// "copper garden river candle morning yellow". It draws from crypto/rand so
// that a phrase cannot be predicted from earlier ones.
func Phrase() string {
	// Assigning the array copies it, so removing picked words below leaves
	// the shared list intact.
	all := phraseWordList
	words := all[:]
	picked := make([]string, 0, PhraseWords)
	for len(picked) < PhraseWords {
		i, err := rand.Int(rand.Reader, big.NewInt(int64(len(words))))
		if err != nil {
			// crypto/rand's reader does not fail on supported platforms
			// (it crashes the program instead), so this is unreachable.
			panic(fmt.Sprintf("voice: read random number: %v", err))
		}
		n := int(i.Int64())
		picked = append(picked, words[n])
		words[n] = words[len(words)-1]
		words = words[:len(words)-1]
	}
	return strings.Join(picked, " ")
}

// AllowedPhraseErrors returns how many word edits (substitutions, insertions
// or deletions) MatchPhrase tolerates for a phrase of n words: one in five,
// rounded down, so a six-word phrase allows one and a four-word phrase none.
func AllowedPhraseErrors(n int) int {
	return n / 5
}

// MatchPhrase normalises case and punctuation and accepts when the word edit distance between
// transcript and phrase is at most AllowedPhraseErrors(number of phrase words).
// It returns a helpful mismatch description when it does not match, and ""
// when it does.
//
// Normalisation lower-cases letters, drops apostrophes ("don't" matches
// "dont") and treats every other non-letter, non-digit character as a word
// separator. Word edit distance counts each missing, extra or different word
// as one edit, so transcribers' small spelling changes still count as a
// wrong word.
func MatchPhrase(phrase, transcript string) (ok bool, detail string) {
	want := normalizeWords(phrase)
	got := normalizeWords(transcript)
	if len(want) == 0 {
		return false, "there is no phrase to compare the recording with"
	}
	if len(got) == 0 {
		return false, "no words were recognised in the recording"
	}
	edits := alignWords(want, got)
	allowed := AllowedPhraseErrors(len(want))
	if len(edits) <= allowed {
		return true, ""
	}
	return false, describeEdits(edits, len(want), allowed)
}

// normalizeWords lower-cases s, removes apostrophes and splits it into words
// at every other character that is neither a letter nor a digit.
func normalizeWords(s string) []string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\'' || r == '’' || r == 'ʼ':
		case unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r):
			b.WriteRune(unicode.ToLower(r))
		default:
			b.WriteRune(' ')
		}
	}
	return strings.Fields(b.String())
}

// wordEdit is one difference between the expected and the heard words.
type wordEdit struct {
	want, got string // want is "" for an extra word, got is "" for a missing one
}

// alignWords computes the word-level Levenshtein alignment of want and got
// and returns its edits in phrase order.
func alignWords(want, got []string) []wordEdit {
	// d[i][j] is the edit distance between want[:i] and got[:j].
	d := make([][]int, len(want)+1)
	for i := range d {
		d[i] = make([]int, len(got)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(want); i++ {
		for j := 1; j <= len(got); j++ {
			cost := 1
			if want[i-1] == got[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j-1]+cost, d[i-1][j]+1, d[i][j-1]+1)
		}
	}

	var edits []wordEdit
	i, j := len(want), len(got)
	for i > 0 || j > 0 {
		switch {
		case i > 0 && j > 0 && want[i-1] == got[j-1] && d[i][j] == d[i-1][j-1]:
			i, j = i-1, j-1
		case i > 0 && j > 0 && d[i][j] == d[i-1][j-1]+1:
			edits = append(edits, wordEdit{want: want[i-1], got: got[j-1]})
			i, j = i-1, j-1
		case i > 0 && d[i][j] == d[i-1][j]+1:
			edits = append(edits, wordEdit{want: want[i-1]})
			i--
		default:
			edits = append(edits, wordEdit{got: got[j-1]})
			j--
		}
	}
	for l, r := 0, len(edits)-1; l < r; l, r = l+1, r-1 {
		edits[l], edits[r] = edits[r], edits[l]
	}
	return edits
}

// describeEdits explains a failed match in terms a person reading the
// phrase aloud can act on.
func describeEdits(edits []wordEdit, phraseWords, allowed int) string {
	var parts []string
	for _, e := range edits {
		switch {
		case e.want == "":
			parts = append(parts, fmt.Sprintf("heard extra word %q", e.got))
		case e.got == "":
			parts = append(parts, fmt.Sprintf("missed %q", e.want))
		default:
			parts = append(parts, fmt.Sprintf("heard %q instead of %q", e.got, e.want))
		}
	}
	noun := "words"
	if allowed == 1 {
		noun = "word"
	}
	return fmt.Sprintf("the recording differs from the %d-word phrase in %d places (at most %d %s may differ): %s",
		phraseWords, len(edits), allowed, noun, strings.Join(parts, "; "))
}
