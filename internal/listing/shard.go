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

// Printable ASCII is the alphabet split points are drawn from: they stay
// valid UTF-8, and keys above it (non-ASCII) simply land in the last range.
const (
	lowByte  = 0x21 // '!'
	ceilByte = 0x7f // one past '~'
)

// between returns a string m with lo < m < hi (hi == "" meaning no upper
// bound), sharing lo's first `start` bytes, choosing the byte halfway between
// lo's and hi's at the first position where there is room.
func between(lo, hi string, start int) (string, bool) {
	if len(lo) < start {
		return "", false
	}
	buf := []byte(lo[:start])
	free := hi == "" // true once buf is already below hi
	for i := start; i <= len(lo); i++ {
		a := -1 // lo exhausted: any byte makes m > lo
		if i < len(lo) {
			a = int(lo[i])
		}
		b := ceilByte
		if !free {
			if i >= len(hi) {
				return "", false // buf == hi: nothing fits below it
			}
			b = int(hi[i])
		}
		if mid, ok := midByte(a, b); ok {
			return string(append(buf, byte(mid))), true
		}
		if a < 0 || a >= 0x80 || a > b {
			return "", false
		}
		buf = append(buf, byte(a))
		if a < b {
			free = true
		}
	}
	return "", false
}

// midByte returns a printable ASCII byte strictly between a and b, other than
// the delimiter, as close to halfway as it can.
func midByte(a, b int) (int, bool) {
	lo := max(a+1, lowByte)
	hi := min(b-1, ceilByte-1)
	if lo > hi {
		return 0, false
	}
	mid := (lo + hi) / 2
	if mid == '/' {
		switch {
		case mid+1 <= hi:
			mid++
		case mid-1 >= lo:
			mid--
		default:
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
