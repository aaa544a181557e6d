package s3wire

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	smithytime "github.com/aws/smithy-go/time"
)

// errUnexpected: the reader met something it leaves to the SDK.
var errUnexpected = errors.New("unexpected XML")

// xmlReader walks a document element by element. After child or children
// reports an element's name, exactly one of the value readers or skip must
// consume it.
type xmlReader struct {
	doc []byte
	i   int
	// empty: the element just opened was self-closing.
	empty bool
	// open are the names of the elements open, to check each end tag.
	open [][]byte
}

// root skips the prolog and opens the document element.
func (x *xmlReader) root() (string, error) {
	if err := x.misc(); err != nil {
		return "", err
	}
	name, end, err := x.tag()
	if err != nil || end {
		return "", errors.Join(errUnexpected, err)
	}
	if x.empty {
		return "", fmt.Errorf("%w: empty root", errUnexpected)
	}
	return string(name), nil
}

// misc skips whitespace, processing instructions and comments.
func (x *xmlReader) misc() error {
	for {
		for x.i < len(x.doc) && isSpace(x.doc[x.i]) {
			x.i++
		}
		rest := x.doc[x.i:]
		switch {
		case bytes.HasPrefix(rest, []byte("<?")):
			end := bytes.Index(rest, []byte("?>"))
			if end < 0 {
				return errUnexpected
			}
			x.i += end + 2
		case bytes.HasPrefix(rest, []byte("<!--")):
			end := bytes.Index(rest[4:], []byte("-->"))
			if end < 0 {
				return errUnexpected
			}
			x.i += 4 + end + 3
		default:
			return nil
		}
	}
}

// rest checks nothing but comments and whitespace follow the root.
func (x *xmlReader) rest() error {
	if err := x.misc(); err != nil {
		return err
	}
	if x.i != len(x.doc) {
		return fmt.Errorf("%w: content after the root element", errUnexpected)
	}
	return nil
}

// tag reads the next start or end tag, after skipping whitespace and
// comments. Other text between elements is unexpected, as is an end tag
// that does not close the element open.
func (x *xmlReader) tag() (name []byte, end bool, err error) {
	if err := x.misc(); err != nil {
		return nil, false, err
	}
	rest := x.doc[x.i:]
	if len(rest) < 2 || rest[0] != '<' || rest[1] == '!' || rest[1] == '?' {
		return nil, false, fmt.Errorf("%w at byte %d", errUnexpected, x.i)
	}
	if rest[1] == '/' {
		close := bytes.IndexByte(rest, '>')
		if close < 0 {
			return nil, false, errUnexpected
		}
		name = bytes.TrimRight(rest[2:close], " \t\r\n")
		if n := len(x.open); n == 0 || !bytes.Equal(x.open[n-1], name) {
			return nil, false, fmt.Errorf("%w: end tag %q", errUnexpected, name)
		}
		x.open = x.open[:len(x.open)-1]
		x.i += close + 1
		return name, true, nil
	}
	j := 1
	for j < len(rest) && !isSpace(rest[j]) && rest[j] != '>' && rest[j] != '/' {
		j++
	}
	name = rest[1:j]
	if len(name) == 0 || bytes.IndexByte(name, ':') >= 0 {
		return nil, false, fmt.Errorf("%w: element %q", errUnexpected, name)
	}
	// Attributes (xmlns) are skipped; quoted values may hold '>'.
	var quote byte
	for ; j < len(rest); j++ {
		c := rest[j]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '>':
			x.empty = rest[j-1] == '/'
			if !x.empty {
				x.open = append(x.open, name)
			}
			x.i += j + 1
			return name, false, nil
		}
	}
	return nil, false, errUnexpected
}

// child opens the next child element, or reports the parent's end.
func (x *xmlReader) child() (name []byte, end bool, err error) {
	x.empty = false
	return x.tag()
}

// children calls f for each child of the element just opened; f consumes it.
func (x *xmlReader) children(f func(name []byte) error) error {
	if x.empty {
		return nil
	}
	for {
		name, end, err := x.child()
		if err != nil {
			return err
		}
		if end {
			return nil
		}
		if err := f(name); err != nil {
			return err
		}
	}
}

// skip consumes the element just opened, whatever it holds.
func (x *xmlReader) skip() error {
	if x.empty {
		return nil
	}
	for depth := 1; depth > 0; {
		next := bytes.IndexByte(x.doc[x.i:], '<')
		if next < 0 {
			return errUnexpected
		}
		x.i += next
		if bytes.HasPrefix(x.doc[x.i:], []byte("<![CDATA[")) {
			return fmt.Errorf("%w: CDATA", errUnexpected)
		}
		_, end, err := x.tag()
		if err != nil {
			return err
		}
		switch {
		case end:
			depth--
		case !x.empty:
			depth++
		}
		x.empty = false
	}
	return nil
}

// text reads the element just opened as character data and consumes its
// end tag. An empty element reads as "", as the SDK reads it.
func (x *xmlReader) text() (string, error) {
	if x.empty {
		return "", nil
	}
	end := bytes.IndexByte(x.doc[x.i:], '<')
	if end < 0 {
		return "", errUnexpected
	}
	raw := x.doc[x.i : x.i+end]
	x.i += end
	if !bytes.HasPrefix(x.doc[x.i:], []byte("</")) { // an element, comment or CDATA inside
		return "", fmt.Errorf("%w: mixed content", errUnexpected)
	}
	if _, _, err := x.tag(); err != nil {
		return "", err
	}
	return unescape(raw)
}

func (x *xmlReader) optString(p **string) error {
	s, err := x.text()
	if err == nil {
		*p = &s
	}
	return err
}

func (x *xmlReader) enum(set func(string)) error {
	s, err := x.text()
	if err == nil {
		set(s)
	}
	return err
}

func (x *xmlReader) optInt64(p **int64) error {
	s, err := x.text()
	if err != nil {
		return err
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return err
	}
	*p = &v
	return nil
}

func (x *xmlReader) optInt32(p **int32) error {
	s, err := x.text()
	if err != nil {
		return err
	}
	v, err := strconv.ParseInt(s, 10, 64) // as the SDK parses, then narrows
	if err != nil {
		return err
	}
	n := int32(v)
	*p = &n
	return nil
}

func (x *xmlReader) optBool(p **bool) error {
	s, err := x.text()
	if err != nil {
		return err
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*p = &v
	return nil
}

func (x *xmlReader) optTime(p **time.Time) error {
	s, err := x.text()
	if err != nil {
		return err
	}
	t, err := smithytime.ParseDateTime(s)
	if err != nil {
		return err
	}
	*p = &t
	return nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// unescape decodes character data: the five predefined entities and
// character references. A raw carriage return (which XML readers fold into
// a newline) or invalid UTF-8 is left to the SDK.
func unescape(raw []byte) (string, error) {
	if bytes.IndexByte(raw, '\r') >= 0 || !utf8.Valid(raw) {
		return "", fmt.Errorf("%w: text needing normalisation", errUnexpected)
	}
	amp := bytes.IndexByte(raw, '&')
	if amp < 0 {
		return string(raw), nil
	}
	var b strings.Builder
	b.Grow(len(raw))
	for amp >= 0 {
		b.Write(raw[:amp])
		raw = raw[amp:]
		semi := bytes.IndexByte(raw, ';')
		if semi < 0 {
			return "", fmt.Errorf("%w: unterminated entity", errUnexpected)
		}
		ent := string(raw[1:semi])
		switch ent {
		case "lt":
			b.WriteByte('<')
		case "gt":
			b.WriteByte('>')
		case "amp":
			b.WriteByte('&')
		case "apos":
			b.WriteByte('\'')
		case "quot":
			b.WriteByte('"')
		default:
			r, err := charRef(ent)
			if err != nil {
				return "", err
			}
			b.WriteRune(r)
		}
		raw = raw[semi+1:]
		amp = bytes.IndexByte(raw, '&')
	}
	b.Write(raw)
	return b.String(), nil
}

// charRef decodes "#NN" or "#xHH" to a rune XML allows.
func charRef(ent string) (rune, error) {
	var v uint64
	var err error
	switch {
	case strings.HasPrefix(ent, "#x"):
		v, err = strconv.ParseUint(ent[2:], 16, 32)
	case strings.HasPrefix(ent, "#"):
		v, err = strconv.ParseUint(ent[1:], 10, 32)
	default:
		return 0, fmt.Errorf("%w: entity &%s;", errUnexpected, ent)
	}
	r := rune(v)
	if err != nil || !isXMLChar(r) {
		return 0, fmt.Errorf("%w: character reference &%s;", errUnexpected, ent)
	}
	return r, nil
}

// isXMLChar is XML 1.0's Char production, as encoding/xml checks it.
func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D || r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}
