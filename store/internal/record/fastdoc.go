package record

import "unicode/utf8"

// decodeDocFast decodes doc into d when it has the shape EncodeAgent gives
// the common agent: a description whose attributes all have string
// values, capabilities, custom capabilities and labels, nothing else, and
// no string that needs unescaping. It reports false for anything else,
// and then d is to be decoded by encoding/json: reading every agent (a
// preview, a rollout's progress, a connect storm) spent most of its time
// in encoding/json's scanner, which goes over each document twice.
func decodeDocFast(doc []byte, d *agentDoc) bool {
	s := docScanner{b: doc}
	return s.object(docKeys[:], func(k int) (ok bool) {
		switch k {
		case 0:
			d.Description, ok = s.description()
		case 1:
			d.Capabilities, ok = s.uint()
		case 2:
			d.CustomCapabilities, ok = s.strings()
		case 3:
			d.Labels, ok = s.labels()
		}
		return ok
	}) && s.end()
}

// docKeys are the agentDoc keys decodeDocFast reads.
var docKeys = [4]string{"description", "capabilities", "custom_capabilities", "labels"}

// docScanner reads the JSON encoding/json writes: tokens, with white space
// allowed between them.
type docScanner struct {
	b []byte
	i int
}

func (s *docScanner) space() {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\n' || s.b[s.i] == '\t' || s.b[s.i] == '\r') {
		s.i++
	}
}

// next consumes c if it comes next.
func (s *docScanner) next(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *docScanner) end() bool {
	s.space()
	return s.i == len(s.b)
}

// str reads a string without escapes, of valid UTF-8.
func (s *docScanner) str() (string, bool) {
	text, ok := s.raw()
	return string(text), ok
}

// raw is str without the copy: the string's bytes in the document.
func (s *docScanner) raw() ([]byte, bool) {
	if !s.next('"') {
		return nil, false
	}
	start := s.i
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '"':
			text := s.b[start:s.i]
			s.i++
			if !utf8.Valid(text) {
				return nil, false
			}
			return text, true
		case c == '\\' || c < 0x20:
			return nil, false
		}
		s.i++
	}
	return nil, false
}

// key reads the object key k and its colon.
func (s *docScanner) key(k string) bool {
	got, ok := s.str()
	return ok && got == k && s.next(':')
}

func (s *docScanner) uint() (uint64, bool) {
	s.space()
	start := s.i
	var n uint64
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		d := uint64(s.b[s.i] - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
		s.i++
	}
	if s.i == start || (s.b[start] == '0' && s.i-start > 1) {
		return 0, false
	}
	return n, true
}

// seq reads open, items separated by commas (none at all too), close;
// item reads one item.
func (s *docScanner) seq(open, close byte, item func() bool) bool {
	if !s.next(open) {
		return false
	}
	if s.next(close) {
		return true
	}
	for {
		if !item() {
			return false
		}
		if s.next(close) {
			return true
		}
		if !s.next(',') {
			return false
		}
	}
}

// description reads {"identifying":[...],"non_identifying":[...]}, either
// list left out.
func (s *docScanner) description() (*descriptionDoc, bool) {
	d := &descriptionDoc{}
	var seen [2]bool
	ok := s.seq('{', '}', func() bool {
		k, ok := s.str()
		if !ok || !s.next(':') {
			return false
		}
		list, ok := s.kvs()
		switch {
		case k == "identifying" && !seen[0]:
			d.Identifying, seen[0] = list, true
		case k == "non_identifying" && !seen[1]:
			d.NonIdentifying, seen[1] = list, true
		default:
			return false
		}
		return ok
	})
	return d, ok
}

// kvs reads [{"k":"key","v":{"s":"value"}},...]: string values only.
func (s *docScanner) kvs() ([]kvDoc, bool) {
	list := []kvDoc{}
	ok := s.seq('[', ']', func() bool {
		if !s.next('{') || !s.key("k") {
			return false
		}
		k, ok := s.str()
		if !ok || !s.next(',') || !s.key("v") || !s.next('{') || !s.key("s") {
			return false
		}
		v, ok := s.str()
		list = append(list, kvDoc{Key: k, Value: value{v}})
		return ok && s.next('}') && s.next('}')
	})
	return list, ok
}

func (s *docScanner) strings() ([]string, bool) {
	list := []string{}
	ok := s.seq('[', ']', func() bool {
		v, ok := s.str()
		list = append(list, v)
		return ok
	})
	return list, ok
}

func (s *docScanner) labels() (map[string]string, bool) {
	m := map[string]string{}
	ok := s.seq('{', '}', func() bool {
		k, ok := s.str()
		if !ok || !s.next(':') {
			return false
		}
		m[k], ok = s.str()
		return ok
	})
	return m, ok
}
