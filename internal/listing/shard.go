package listing

import (
	"strings"
	"unicode/utf8"
)

const delimiter = "/"

// shard is one piece of the key space, listed by one lister at a time.
//
// It covers the keys k with prefix `prefix` such that
//
//	k > after                (after == "": no lower bound; sent as StartAfter)
//	k >= from                (from == "": none; filters keys between after and from)
//	k < upTo, or k <= upTo when upToIncl (upTo == "": no upper bound)
//	and, when deep, k has a "/" after `level` (the objects directly at `level`
//	were emitted by the delimiter walk of `level`).
//
// A delim shard lists with Delimiter "/": it emits the objects at its own
// level and hands out its common prefixes. Split points of a delim shard never
// fall inside one of its common prefixes (they hold no "/" after prefix), so
// every common prefix is reported by exactly one shard.
type shard struct {
	prefix   string
	after    string
	from     string
	upTo     string
	upToIncl bool
	delim    bool
	deep     bool
	level    string
	depth    int
}

// beyond reports whether entry (a key, or a common prefix of a delim shard)
// lies past the shard's upper bound.
func (s *shard) beyond(entry string) bool {
	if s.upTo == "" {
		return false
	}
	if s.upToIncl {
		return entry > s.upTo
	}
	return entry >= s.upTo
}

// keeps reports whether key, which is within the upper bound, belongs to s.
func (s *shard) keeps(key string) bool {
	if s.from != "" && key < s.from {
		return false
	}
	if s.deep && !strings.Contains(key[len(s.level):], delimiter) {
		return false
	}
	return true
}

// splitAt cuts s at m: s keeps the keys <= m and the returned shard takes the
// keys > m up to s's old upper bound.
func (s *shard) splitAt(m string) *shard {
	upper := *s
	upper.after = m
	upper.from = ""
	s.upTo, s.upToIncl = m, true
	return &upper
}

// subtrees returns the flat shard covering the subtrees of the consecutive
// common prefixes first..last of the delim shard parent.
func subtrees(parent *shard, first, last string) *shard {
	if first == last {
		return &shard{prefix: first, depth: parent.depth + 1}
	}
	// Keys under first..last are exactly the deeper keys in [first, end),
	// where end is last with its trailing "/" bumped to "0", the next byte.
	end := last[:len(last)-1] + "0"
	return &shard{
		prefix: runePrefix(commonPrefix(first, end)),
		after:  first[:len(first)-1],
		from:   first,
		upTo:   end,
		deep:   true,
		level:  parent.prefix,
		depth:  parent.depth + 1,
	}
}

// splitPoint returns a key m with last < m and m below s's upper bound, such
// that listing can resume with StartAfter m. It returns false when no such
// key exists (or none worth splitting at). last is the last entry of the page
// just listed: a key, or for a delim shard possibly a common prefix.
func (s *shard) splitPoint(last string) (string, bool) {
	m, ok := between(last, s.upTo, len(s.prefix))
	if !ok || !strings.HasPrefix(m, s.prefix) {
		return "", false
	}
	if s.delim && strings.Contains(m[len(s.prefix):], delimiter) {
		return "", false
	}
	if m <= last || (s.upTo != "" && m >= s.upTo) {
		return "", false
	}
	return m, true
}

// between returns a string m with lo < m < hi (hi == "" meaning no upper
// bound), sharing lo's first `start` bytes, choosing the character halfway
// between lo's and hi's at the first position where there is room. Keys
// are UTF-8, whose byte order is the order of code points, so split points
// are drawn from the whole of Unicode: a bucket whose keys start with
// Cyrillic, CJK or emoji is split as one in ASCII is. Split points are
// valid UTF-8, and never a control character, a space, "/" or a surrogate.
func between(lo, hi string, start int) (string, bool) {
	if len(lo) < start || len(hi) > 0 && len(hi) < start || !utf8.ValidString(lo[start:]) {
		return "", false
	}
	buf := []byte(lo[:start])
	free := hi == "" // true once buf is already below hi
	for i := start; ; {
		a, width := rune(-1), 0 // lo exhausted: any character makes m > lo
		if i < len(lo) {
			a, width = utf8.DecodeRuneInString(lo[i:])
		}
		b := ceiling(a)
		if !free {
			if i >= len(hi) {
				return "", false // buf == hi: nothing fits below it
			}
			b, _ = utf8.DecodeRuneInString(hi[i:])
		}
		if mid, ok := midRune(a, b); ok {
			return string(utf8.AppendRune(buf, mid)), true
		}
		if a < 0 || a > b {
			return "", false
		}
		buf = append(buf, lo[i:i+width]...)
		if a < b {
			free = true
		}
		i += width
	}
}

// ceiling is the bound, exclusive, of split points above a when nothing
// bounds them: the end of the range of characters that take as many UTF-8
// bytes as a. Keys of one script share a range, so halving within it
// spreads them; halving up to U+10FFFF would put them all on one side.
func ceiling(a rune) rune {
	switch {
	case a < 0x7F:
		return 0x7F // printable ASCII, DEL aside
	case a < 0x800:
		return 0x800
	case a < 0x10000:
		return 0xFFFE // U+FFFE and U+FFFF are not characters
	}
	return utf8.MaxRune + 1
}

// skipped are the characters a split point never holds: the delimiter,
// DEL and the C1 controls, surrogates (not UTF-8) and the noncharacters
// U+FFFE and U+FFFF (which XML, and so a server that echoes StartAfter,
// cannot carry).
var skipped = []struct{ first, last rune }{{'/', '/'}, {0x7F, 0x9F}, {0xD800, 0xDFFF}, {0xFFFE, 0xFFFF}}

// midRune returns a character strictly between a and b, as close to halfway
// as it can: never below "!", never one of skipped.
func midRune(a, b rune) (rune, bool) {
	lo, hi := max(a+1, '!'), b-1
	mid := lo + (hi-lo)/2
	for _, skip := range skipped {
		if mid >= skip.first && mid <= skip.last {
			if skip.last+1 <= hi {
				mid = skip.last + 1
			} else {
				mid = skip.first - 1
			}
		}
	}
	if mid < lo || mid > hi {
		return 0, false
	}
	for _, skip := range skipped {
		if mid >= skip.first && mid <= skip.last {
			return 0, false
		}
	}
	return mid, true
}

func commonPrefix(a, b string) string {
	n := min(len(a), len(b))
	i := 0
	for i < n && a[i] == b[i] {
		i++
	}
	return a[:i]
}

// runePrefix trims s back to the last complete UTF-8 character.
func runePrefix(s string) string {
	for len(s) > 0 {
		r, size := utf8.DecodeLastRuneInString(s)
		if r != utf8.RuneError || size > 1 {
			return s
		}
		s = s[:len(s)-1]
	}
	return s
}
