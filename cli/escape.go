package cli

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// safe returns s fit for a terminal: control characters (C0, DEL, C1,
// including ESC, which starts terminal escape sequences, and CR, which
// overwrites a line), Unicode bidirectional overrides and isolates (which
// reorder what is shown) and invalid UTF-8 are written as Go escapes
// (\x1b, \u202e); everything else is kept. Agents choose much of what the
// CLI prints (attributes, health messages), so every table cell and detail
// line goes through it; -o json needs nothing, as JSON escapes these.
func safe(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unsafeRune(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x80 && unsafeRune(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// unsafeRune reports control characters and bidirectional formatting
// characters.
func unsafeRune(r rune) bool {
	if unicode.IsControl(r) {
		return true
	}
	switch {
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		return true
	}
	return false
}

// jsonSafe writes the unsafe runes of encoded JSON that encoding/json left
// as they are (C1 controls, bidirectional formatting) as \uXXXX escapes;
// JSON text holds such runes only inside strings, where the escape means
// the same.
func jsonSafe(s string) string {
	var b strings.Builder
	last := 0
	for i, r := range s {
		if r >= 0x80 && unsafeRune(r) {
			b.WriteString(s[last:i])
			fmt.Fprintf(&b, `\u%04x`, r)
			last = i + utf8.RuneLen(r)
		}
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}
