package install

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestReadSecurityVersion(t *testing.T) {
	d := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(d, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		path string
		want uint64
		err  error
	}{
		{"missing", filepath.Join(d, "none"), 0, nil},
		{"number", file("n", "7\n"), 7, nil},
		{"spaces", file("s", "  12 \n"), 12, nil},
		{"directory", d, 0, ErrRollback},
		{"character device", os.DevNull, 0, ErrRollback},
		{"text", file("t", "seven\n"), 0, ErrRollback},
		{"negative", file("neg", "-1\n"), 0, ErrRollback},
		{"huge", file("h", "7"+string(bytes.Repeat([]byte(" "), 1<<20))), 0, ErrRollback},
		{"empty", file("e", ""), 0, ErrRollback},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadSecurityVersion(tc.path)
			if got != tc.want || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Errorf("ReadSecurityVersion(%s) = %d, %v; want %d, %v", tc.path, got, err, tc.want, tc.err)
			}
		})
	}
}
