package bundle

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Printable returns s in a form that is safe to show on a terminal or in a
// log: s itself when every character of it is printable (unicode.IsPrint:
// letters, marks, numbers, punctuation, symbols and the ASCII space), else
// s quoted with Go escapes. Strings taken from a bundle go through it
// before they are printed, so that no bundle can move the cursor, erase a
// line, reorder text with bidi controls or start a new line that looks
// like the tool's own output.
func Printable(s string) string {
	if isPrintable(s) {
		return s
	}
	return strconv.Quote(s)
}

// isPrintable reports whether s is valid UTF-8 made of printable
// characters only.
func isPrintable(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// EscapeLine makes a message safe to print as one line: every character
// that is not printable (tabs aside) is replaced by its Go escape (\n,
// \x1b, \u202e), and invalid UTF-8 by \x escapes. The tools pass every
// error through it, whatever bundle content the error quotes.
func EscapeLine(s string) string {
	if isPrintable(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			b.WriteString(`\x`)
			b.WriteString(strconv.FormatUint(uint64(s[i])|0x100, 16)[1:])
		case r == '\t' || unicode.IsPrint(r):
			b.WriteString(s[i : i+n])
		default:
			q := strconv.QuoteRune(r) // '\x1b', '\u202e', '\n'
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return b.String()
}

// OneLine makes a message one printable line, as the tools print their
// errors: the lines of joined or multi-line errors are trimmed and joined
// with "; ", and what is left that is not printable is escaped
// (EscapeLine), carriage returns and Unicode line separators included.
func OneLine(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.Trim(l, " \t\r"); l != "" {
			parts = append(parts, l)
		}
	}
	return EscapeLine(strings.Join(parts, "; "))
}

// clip shortens s to at most n bytes (on a character boundary), marking
// the cut, for messages that quote unverified bundle content.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
