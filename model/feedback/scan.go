package feedback

import (
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// A hand-written reader for the flat event object. The worker decodes every
// event it consumes, and encoding/json's reflection cost about 5 µs an event
// (most of the worker's CPU); this reader does the same job in a fraction of
// that. It accepts exactly RFC 8259 JSON (FuzzDecodeMatchesEncodingJSON
// checks it against encoding/json): string fields take strings or null,
// number fields numbers or null, unknown fields any value, the last of
// duplicate keys wins, and invalid UTF-8 inside strings becomes U+FFFD as in
// encoding/json; unlike encoding/json it remembers, per field, that it did
// so (replaced), so that a mangled id is rejected instead of colliding with
// another one mangled the same way.

type rawEvent struct {
	fields  [nFields]string
	present [nFields]bool
	// replaced: the field's string had invalid UTF-8 or an unpaired
	// surrogate escape, now U+FFFD
	replaced [nFields]bool
	numbers  [2]float64
	hasNum   [2]bool
}

const (
	fEventID = iota
	fUserID
	fSessionID
	fItemID
	fType
	fTS
	fRecID
	nFields
)

const (
	nValue = iota
	nPosition
)

var stringFields = [nFields]string{"event_id", "user_id", "session_id", "item_id", "type", "ts", "rec_id"}
var numberFields = [2]string{"value", "position"}

type scanner struct {
	b []byte
	s string // b as a string, so unescaped strings are substrings, not copies
	i int
	// typeErr is the first field of the wrong type; like encoding/json, the
	// scan goes on so that a later syntax error takes precedence.
	typeErr *DecodeError
	// replaced is set by strSlow when it writes U+FFFD for bytes that were
	// not valid UTF-8 or for an unpaired surrogate escape.
	replaced bool
}

func syntaxErr(format string, args ...any) *DecodeError {
	return &DecodeError{Class: ClassInvalidJSON, Msg: fmt.Sprintf(format, args...)}
}

// scanEvent parses b into r.
func scanEvent(b []byte, r *rawEvent) *DecodeError {
	sc := scanner{b: b, s: string(b)}
	if err := sc.object(r); err != nil {
		return err
	}
	return sc.typeErr
}

func (sc *scanner) object(r *rawEvent) *DecodeError {
	b := sc.b
	sc.ws()
	if sc.i >= len(b) {
		return syntaxErr("unexpected end of JSON input")
	}
	switch b[sc.i] {
	case '{':
	case 'n':
		// encoding/json decodes a top-level null into an empty event.
		if err := sc.literal("null"); err != nil {
			return err
		}
		return sc.end()
	default:
		if err := sc.skipValue(0); err != nil {
			return err
		}
		if err := sc.end(); err != nil {
			return err
		}
		return syntaxErr("event must be a JSON object, got %s", kindOf(b[firstNonSpace(b)]))
	}
	if err := sc.members(func(key string) *DecodeError { return sc.field(key, r) }); err != nil {
		return err
	}
	return sc.end()
}

// members reads an object from its opening brace to its closing one,
// calling value for each member with the scanner at the member's value,
// which value must consume.
func (sc *scanner) members(value func(key string) *DecodeError) *DecodeError {
	sc.i++ // opening brace
	sc.ws()
	if sc.peek() == '}' {
		sc.i++
		return nil
	}
	for {
		sc.ws()
		if sc.peek() != '"' {
			return sc.unexpected("looking for beginning of object key string")
		}
		key, err := sc.str()
		if err != nil {
			return err
		}
		sc.ws()
		if sc.peek() != ':' {
			return sc.unexpected("after object key")
		}
		sc.i++
		sc.ws()
		if err := value(key); err != nil {
			return err
		}
		sc.ws()
		switch sc.peek() {
		case ',':
			sc.i++
		case '}':
			sc.i++
			return nil
		default:
			return sc.unexpected("after object key:value pair")
		}
	}
}

func (sc *scanner) field(key string, r *rawEvent) *DecodeError {
	for f, name := range stringFields {
		if key != name {
			continue
		}
		switch sc.peek() {
		case '"':
			sc.replaced = false
			v, err := sc.str()
			if err != nil {
				return err
			}
			r.fields[f], r.present[f], r.replaced[f] = v, true, sc.replaced
			return nil
		case 'n':
			if err := sc.literal("null"); err != nil {
				return err
			}
			r.fields[f], r.present[f], r.replaced[f] = "", false, false
			return nil
		}
		start := sc.i
		if err := sc.skipValue(0); err != nil {
			return err
		}
		sc.wrongType(&DecodeError{Class: ClassWrongType, Field: name, Msg: "must be a string, got " + kindOf(sc.b[start])})
		return nil
	}
	for n, name := range numberFields {
		if key != name {
			continue
		}
		c := sc.peek()
		switch {
		case c == '-' || (c >= '0' && c <= '9'):
			v, err := sc.number()
			if err != nil {
				if err.Class != ClassOutOfRange {
					return err
				}
				err.Field = name
				sc.wrongType(err)
				return nil
			}
			r.numbers[n], r.hasNum[n] = v, true
			return nil
		case c == 'n':
			if err := sc.literal("null"); err != nil {
				return err
			}
			r.numbers[n], r.hasNum[n] = 0, false
			return nil
		}
		start := sc.i
		if err := sc.skipValue(0); err != nil {
			return err
		}
		sc.wrongType(&DecodeError{Class: ClassWrongType, Field: name, Msg: "must be a number, got " + truncate(string(sc.b[start:sc.i]))})
		return nil
	}
	return sc.skipValue(0)
}

func (sc *scanner) wrongType(err *DecodeError) {
	if sc.typeErr == nil {
		sc.typeErr = err
	}
}

func (sc *scanner) peek() byte {
	if sc.i < len(sc.b) {
		return sc.b[sc.i]
	}
	return 0
}

func (sc *scanner) ws() {
	for sc.i < len(sc.b) {
		switch sc.b[sc.i] {
		case ' ', '\t', '\n', '\r':
			sc.i++
		default:
			return
		}
	}
}

func (sc *scanner) end() *DecodeError {
	sc.ws()
	if sc.i != len(sc.b) {
		return sc.unexpected("after top-level value")
	}
	return nil
}

func (sc *scanner) unexpected(context string) *DecodeError {
	if sc.i >= len(sc.b) {
		return syntaxErr("unexpected end of JSON input")
	}
	return syntaxErr("invalid character %s %s at byte %d", quoteChar(sc.b[sc.i]), context, sc.i)
}

func (sc *scanner) literal(lit string) *DecodeError {
	if len(sc.b)-sc.i >= len(lit) && sc.s[sc.i:sc.i+len(lit)] == lit {
		sc.i += len(lit)
		return nil
	}
	for k := 0; k < len(lit); k++ {
		if sc.i+k >= len(sc.b) {
			sc.i += k
			return syntaxErr("unexpected end of JSON input")
		}
		if sc.b[sc.i+k] != lit[k] {
			sc.i += k
			return sc.unexpected("in literal " + lit)
		}
	}
	return nil
}

// str reads a string starting at the opening quote.
func (sc *scanner) str() (string, *DecodeError) {
	sc.i++ // opening quote
	start := sc.i
	for sc.i < len(sc.b) {
		c := sc.b[sc.i]
		switch {
		case c == '"':
			s := sc.s[start:sc.i]
			sc.i++
			return s, nil
		case c == '\\' || c >= utf8.RuneSelf:
			return sc.strSlow(start)
		case c < 0x20:
			return "", sc.unexpected("in string literal")
		}
		sc.i++
	}
	return "", syntaxErr("unexpected end of JSON input")
}

// strSlow finishes a string with escapes or non-ASCII bytes.
func (sc *scanner) strSlow(start int) (string, *DecodeError) {
	buf := make([]byte, 0, sc.i-start+16)
	buf = append(buf, sc.b[start:sc.i]...)
	for sc.i < len(sc.b) {
		c := sc.b[sc.i]
		switch {
		case c == '"':
			sc.i++
			return string(buf), nil
		case c < 0x20:
			return "", sc.unexpected("in string literal")
		case c == '\\':
			sc.i++
			if sc.i >= len(sc.b) {
				return "", syntaxErr("unexpected end of JSON input")
			}
			switch e := sc.b[sc.i]; e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r1, ok := sc.hex4(sc.i + 1)
				if !ok {
					return "", sc.unexpected("in \\u hexadecimal character escape")
				}
				sc.i += 4
				if utf16.IsSurrogate(r1) {
					// A valid pair is two escapes; anything else is U+FFFD.
					if r2, ok := sc.hex4(sc.i + 3); ok && sc.i+2 < len(sc.b) && sc.b[sc.i+1] == '\\' && sc.b[sc.i+2] == 'u' {
						if dec := utf16.DecodeRune(r1, r2); dec != utf8.RuneError {
							buf = utf8.AppendRune(buf, dec)
							sc.i += 6
							break
						}
					}
					r1, sc.replaced = utf8.RuneError, true
				}
				buf = utf8.AppendRune(buf, r1)
			default:
				return "", sc.unexpected("in string escape code")
			}
			sc.i++
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			sc.i++
		default:
			r, size := utf8.DecodeRune(sc.b[sc.i:])
			if r == utf8.RuneError && size == 1 {
				buf = utf8.AppendRune(buf, utf8.RuneError)
				sc.replaced = true
			} else {
				buf = append(buf, sc.b[sc.i:sc.i+size]...)
			}
			sc.i += size
		}
	}
	return "", syntaxErr("unexpected end of JSON input")
}

func (sc *scanner) hex4(at int) (rune, bool) {
	if at+4 > len(sc.b) {
		return 0, false
	}
	var r rune
	for _, c := range sc.b[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r*16 + rune(c)
	}
	return r, true
}

// number reads a JSON number.
func (sc *scanner) number() (float64, *DecodeError) {
	start := sc.i
	if sc.peek() == '-' {
		sc.i++
	}
	switch c := sc.peek(); {
	case c == '0':
		sc.i++
	case c >= '1' && c <= '9':
		sc.digits()
	default:
		return 0, sc.unexpected("in numeric literal")
	}
	if sc.peek() == '.' {
		sc.i++
		if c := sc.peek(); c < '0' || c > '9' {
			return 0, sc.unexpected("after decimal point in numeric literal")
		}
		sc.digits()
	}
	if c := sc.peek(); c == 'e' || c == 'E' {
		sc.i++
		if c := sc.peek(); c == '+' || c == '-' {
			sc.i++
		}
		if c := sc.peek(); c < '0' || c > '9' {
			return 0, sc.unexpected("in exponent of numeric literal")
		}
		sc.digits()
	}
	f, err := strconv.ParseFloat(sc.s[start:sc.i], 64)
	if err != nil {
		return 0, &DecodeError{Class: ClassOutOfRange, Msg: fmt.Sprintf("number %s is out of range", truncate(sc.s[start:sc.i]))}
	}
	return f, nil
}

func (sc *scanner) digits() {
	for sc.i < len(sc.b) && sc.b[sc.i] >= '0' && sc.b[sc.i] <= '9' {
		sc.i++
	}
}

// skipValue validates and skips any JSON value.
func (sc *scanner) skipValue(depth int) *DecodeError {
	if depth > 10000 {
		return syntaxErr("exceeded max depth")
	}
	sc.ws()
	switch c := sc.peek(); {
	case c == '"':
		_, err := sc.str()
		return err
	case c == '-' || (c >= '0' && c <= '9'):
		if _, err := sc.number(); err != nil && err.Class == ClassInvalidJSON {
			return err
		}
		return nil
	case c == 't':
		return sc.literal("true")
	case c == 'f':
		return sc.literal("false")
	case c == 'n':
		return sc.literal("null")
	case c == '[':
		sc.i++
		sc.ws()
		if sc.peek() == ']' {
			sc.i++
			return nil
		}
		for {
			if err := sc.skipValue(depth + 1); err != nil {
				return err
			}
			sc.ws()
			switch sc.peek() {
			case ',':
				sc.i++
			case ']':
				sc.i++
				return nil
			default:
				return sc.unexpected("after array element")
			}
		}
	case c == '{':
		return sc.members(func(string) *DecodeError { return sc.skipValue(depth + 1) })
	}
	return sc.unexpected("looking for beginning of value")
}

func firstNonSpace(b []byte) int {
	for i, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return i
		}
	}
	return 0
}

func kindOf(c byte) string {
	switch {
	case c == '"':
		return "string"
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == 't' || c == 'f':
		return "bool"
	case c == 'n':
		return "null"
	}
	return "number"
}

func quoteChar(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	s := strconv.Quote(string(c))
	return "'" + s[1:len(s)-1] + "'"
}
