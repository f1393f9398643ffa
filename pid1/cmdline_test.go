package pid1

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseCmdline(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []Param
	}{
		{"", nil},
		{"   \n", nil},
		{"quiet", []Param{{Key: "quiet"}}},
		{"console=ttyS0 quiet\n", []Param{{Key: "console", Value: "ttyS0", HasValue: true}, {Key: "quiet"}}},
		{"a= b", []Param{{Key: "a", HasValue: true}, {Key: "b"}}},
		{"a=b=c", []Param{{Key: "a", Value: "b=c", HasValue: true}}},
		{`lifeboat.url="http://x/a b" x=1`, []Param{{Key: "lifeboat.url", Value: "http://x/a b", HasValue: true}, {Key: "x", Value: "1", HasValue: true}}},
		{`"lifeboat.msg=hello world" y`, []Param{{Key: "lifeboat.msg", Value: "hello world", HasValue: true}, {Key: "y"}}},
		{`"just quoted"`, []Param{{Key: "just quoted"}}},
		{`a="unterminated b=c`, []Param{{Key: "a", Value: "unterminated b=c", HasValue: true}}},
		{"root=/dev/vda -- lifeboat.x=1 initarg", []Param{
			{Key: "root", Value: "/dev/vda", HasValue: true},
			{Key: "lifeboat.x", Value: "1", HasValue: true},
			{Key: "initarg"},
		}},
		{"\ttab=1\tnext", []Param{{Key: "tab", Value: "1", HasValue: true}, {Key: "next"}}},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got := ParseCmdline(tt.in)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseCmdline(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestParams(t *testing.T) {
	in := ParseCmdline(`console=ttyS0 lifeboat.watchdog=5 lifeboat.watchdog-grace=20s lifeboat.debug lifeboat.x=1 lifeboat.x=2 lifeboat.= lifeboatfoo=1 lifeboat.url="a b"`)
	want := map[string]string{"watchdog": "5", "watchdog_grace": "20s", "debug": "", "x": "2", "url": "a b"}
	if diff := cmp.Diff(want, Params(in)); diff != "" {
		t.Errorf("Params mismatch (-want +got):\n%s", diff)
	}
}

func TestFormatParams(t *testing.T) {
	got := formatParams(map[string]string{"b": "2", "a": "", "c": "x y"})
	if want := `a b=2 c="x y"`; got != want {
		t.Errorf("formatParams = %q, want %q", got, want)
	}
}

func TestReadCmdline(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cmdline")
	if err := os.WriteFile(p, []byte("BOOT_IMAGE=/vmlinuz lifeboat.a=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadCmdline(p)
	if err != nil {
		t.Fatalf("ReadCmdline = %v", err)
	}
	want := []Param{{Key: "BOOT_IMAGE", Value: "/vmlinuz", HasValue: true}, {Key: "lifeboat.a", Value: "1", HasValue: true}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadCmdline mismatch (-want +got):\n%s", diff)
	}
	if _, err := ReadCmdline(filepath.Join(t.TempDir(), "none")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadCmdline(missing) = %v, want ErrNotExist", err)
	}
}

func TestParseDuration(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    time.Duration
		wantErr error
	}{
		{"30", 30 * time.Second, nil},
		{"0", 0, nil},
		{"90s", 90 * time.Second, nil},
		{"5m", 5 * time.Minute, nil},
		{"1500ms", 1500 * time.Millisecond, nil},
		{"-3s", 0, ErrBadDuration},
		{"soon", 0, ErrBadDuration},
		{"", 0, ErrBadDuration},
	} {
		got, err := ParseDuration(tt.in)
		if got != tt.want || !errors.Is(err, tt.wantErr) {
			t.Errorf("ParseDuration(%q) = %v, %v, want %v, %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
