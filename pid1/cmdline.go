package pid1

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrBadDuration reports a kernel command line duration that is neither
// whole seconds ("30") nor a Go duration ("90s", "5m").
var ErrBadDuration = errors.New("pid1: bad duration")

// Prefix starts the kernel command line parameters meant for Lifeboat.
const Prefix = "lifeboat."

// Param is one kernel command line parameter.
type Param struct {
	Key      string
	Value    string
	HasValue bool // "key=" has an empty value, "key" none
}

// ParseCmdline splits a kernel command line the way the kernel does
// (kernel/params.c next_arg): parameters are separated by spaces; double
// quotes group spaces into a value (key="a b") or a whole parameter
// ("key=a b"), and are removed. A lone "--" (what follows is for init) is
// skipped.
func ParseCmdline(s string) []Param {
	var out []Param
	for {
		s = strings.TrimLeft(s, " \t\n\r")
		if s == "" {
			return out
		}
		quoted := false
		if s[0] == '"' {
			s = s[1:]
			quoted = true
		}
		inQuote, equals, i := quoted, -1, 0
		for ; i < len(s); i++ {
			c := s[i]
			if isSpace(c) && !inQuote {
				break
			}
			if equals < 0 && c == '=' {
				equals = i
			}
			if c == '"' {
				inQuote = !inQuote
			}
		}
		arg := s[:i]
		s = s[i:]
		var p Param
		if equals < 0 {
			p.Key = strings.TrimSuffix(arg, `"`)
		} else {
			p.Key, p.Value, p.HasValue = arg[:equals], arg[equals+1:], true
			if strings.HasPrefix(p.Value, `"`) {
				p.Value = strings.TrimSuffix(p.Value[1:], `"`)
			} else if quoted {
				p.Value = strings.TrimSuffix(p.Value, `"`)
			}
		}
		if p.Key == "--" && !p.HasValue {
			continue
		}
		out = append(out, p)
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// Params returns the lifeboat.* parameters by name without the prefix,
// with '-' spelled '_' (the kernel treats both alike in parameter names).
// A later parameter wins over an earlier one with the same name, as in the
// kernel.
func Params(params []Param) map[string]string {
	m := map[string]string{}
	for _, p := range params {
		if name, ok := strings.CutPrefix(p.Key, Prefix); ok && name != "" {
			m[strings.ReplaceAll(name, "-", "_")] = p.Value
		}
	}
	return m
}

// ReadCmdline reads and parses a kernel command line file (/proc/cmdline).
func ReadCmdline(path string) ([]Param, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseCmdline(string(b)), nil
}

// ParseDuration reads a duration given on the kernel command line: whole
// seconds ("30") or a Go duration ("90s", "5m").
func ParseDuration(s string) (time.Duration, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%w: %q", ErrBadDuration, s)
	}
	return d, nil
}

// formatParams renders a parameter map in a stable order for the console.
func formatParams(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
		if v := m[k]; v != "" {
			b.WriteByte('=')
			if strings.ContainsAny(v, " \t") {
				v = strconv.Quote(v)
			}
			b.WriteString(v)
		}
	}
	return b.String()
}
