package bundle

import "testing"

func TestPrintable(t *testing.T) {
	for _, tc := range []struct{ in, printable, line string }{
		{"rootfs", "rootfs", "rootfs"},
		{"thermostat-os 1.2 (ünïcode)", "thermostat-os 1.2 (ünïcode)", "thermostat-os 1.2 (ünïcode)"},
		{"a\x1b[2Kb", `"a\x1b[2Kb"`, `a\x1b[2Kb`},
		{"x\rsignature: verified", `"x\rsignature: verified"`, `x\rsignature: verified`},
		{"x\nsignature: verified", `"x\nsignature: verified"`, `x\nsignature: verified`},
		{"abc\u202edef", `"abc\u202edef"`, `abc\u202edef`},
		{"\u2066isolate\u2069", `"\u2066isolate\u2069"`, `\u2066isolate\u2069`},
		{"c1 \u009b31m", `"c1 \u009b31m"`, `c1 \u009b31m`},
		{"bad \xff utf8", `"bad \xff utf8"`, `bad \xff utf8`},
		{"tab\there", `"tab\there"`, "tab\there"},
		{"", "", ""},
	} {
		if got := Printable(tc.in); got != tc.printable {
			t.Errorf("Printable(%q) = %s, want %s", tc.in, got, tc.printable)
		}
		if got := EscapeLine(tc.in); got != tc.line {
			t.Errorf("EscapeLine(%q) = %s, want %s", tc.in, got, tc.line)
		}
	}
}

func TestOneLine(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"first\nsecond", "first; second"},
		{"yaml: unmarshal errors:\n  line 2: x\n  line 3: y\n", "yaml: unmarshal errors:; line 2: x; line 3: y"},
		{"keeps  inner   spaces", "keeps  inner   spaces"},
		{"cr\rover", `cr\rover`},
		{"ls\u2028ps\u2029", `ls\u2028ps\u2029`},
		{"esc \x1b[2K", `esc \x1b[2K`},
	} {
		if got := OneLine(tc.in); got != tc.want {
			t.Errorf("OneLine(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
