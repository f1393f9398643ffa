package bootenv

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// ubootImage builds a copy by hand, independently of Encode.
func ubootImage(size int, redundant bool, flag, pad byte, entries ...string) []byte {
	img := make([]byte, size)
	hdr := 4
	if redundant {
		hdr = 5
		img[4] = flag
	}
	data := img[hdr:]
	for i := range data {
		data[i] = pad
	}
	p := 0
	for _, e := range entries {
		p += copy(data[p:], e)
		data[p] = 0
		p++
	}
	data[p] = 0
	binary.LittleEndian.PutUint32(img, crc32.ChecksumIEEE(data))
	return img
}

func TestUBootRoundTrip(t *testing.T) {
	vars := [][2]string{
		{"bootcmd", "run distro_bootcmd; reset"},
		{"bootargs", "console=ttyS0,115200 root=/dev/mmcblk0p2 rw"},
		{"multi", "line one\nline two"},
		{"eq", "a=b=c"},
		{"utf8", "grüße"},
		{".flags", "bootcount:dw"},
	}
	for _, redundant := range []bool{false, true} {
		for _, pad := range []byte{0x00, 0xFF} {
			t.Run(map[bool]string{false: "single", true: "redundant"}[redundant]+map[byte]string{0: "/pad00", 0xFF: "/padFF"}[pad], func(t *testing.T) {
				var entries []string
				want := map[string]string{}
				for _, kv := range vars {
					entries = append(entries, kv[0]+"="+kv[1])
					want[kv[0]] = kv[1]
				}
				img := ubootImage(0x400, redundant, 7, pad, entries...)
				e, err := DecodeUBoot(img, redundant)
				if err != nil {
					t.Fatalf("DecodeUBoot() = %v", err)
				}
				if diff := cmp.Diff(want, e.Vars()); diff != "" {
					t.Errorf("DecodeUBoot().Vars() (-want +got):\n%s", diff)
				}
				if redundant && e.Flag() != 7 {
					t.Errorf("Flag() = %d, want 7", e.Flag())
				}
				got, err := e.Encode()
				if err != nil {
					t.Fatalf("Encode() = %v", err)
				}
				if diff := cmp.Diff(img, got); diff != "" {
					t.Errorf("Encode(Decode(img)) differs from img (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestDecodeUBootEntries(t *testing.T) {
	tests := []struct {
		name    string
		entries []string
		want    map[string]string
	}{
		{"empty", nil, map[string]string{}},
		{"later wins", []string{"a=1", "b=2", "a=3"}, map[string]string{"a": "3", "b": "2"}},
		{"no equals ignored", []string{"junk", "a=1"}, map[string]string{"a": "1"}},
		{"empty value deletes", []string{"a=1", "a=", "b=2"}, map[string]string{"b": "2"}},
		{"empty name ignored", []string{"=x", "a=1"}, map[string]string{"a": "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := DecodeUBoot(ubootImage(64, false, 0, 0, tt.entries...), false)
			if err != nil {
				t.Fatalf("DecodeUBoot() = %v", err)
			}
			if diff := cmp.Diff(tt.want, e.Vars()); diff != "" {
				t.Errorf("Vars() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeUBootErrors(t *testing.T) {
	good := ubootImage(64, false, 0, 0xFF, "a=1")
	badCRC := append([]byte(nil), good...)
	badCRC[10] ^= 1
	unterminated := make([]byte, 64)
	for i := 4; i < 64; i++ {
		unterminated[i] = 'x'
	}
	binary.LittleEndian.PutUint32(unterminated, crc32.ChecksumIEEE(unterminated[4:]))
	// The last entry's NUL is the area's last byte: no room for the end entry.
	full := append(make([]byte, 4), "a=1234567890\x00"...)
	binary.LittleEndian.PutUint32(full, crc32.ChecksumIEEE(full[4:]))
	tests := []struct {
		name string
		img  []byte
		want error
	}{
		{"bad crc", badCRC, ErrBadCRC},
		{"full without end entry", full, ErrCorrupt},
		{"blank flash", []byte(strings.Repeat("\xff", 64)), ErrBadCRC},
		{"unterminated", unterminated, ErrCorrupt},
		{"too small", []byte{1, 2, 3}, ErrSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeUBoot(tt.img, false); !errors.Is(err, tt.want) {
				t.Errorf("DecodeUBoot() = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestUBootSet(t *testing.T) {
	tests := []struct {
		name, key, value string
		want             error
	}{
		{"ok", "a", "1", nil},
		{"equals in name", "a=b", "1", ErrInvalidName},
		{"NUL in name", "a\x00b", "1", ErrInvalidName},
		{"empty name", "", "1", ErrInvalidName},
		{"NUL in value", "a", "x\x00y", ErrInvalidValue},
		// 32-byte copy: 28 bytes of data, "k=" + value + NUL + end NUL.
		{"fits exactly", "k", strings.Repeat("v", 24), nil},
		{"too full", "k", strings.Repeat("v", 25), ErrTooFull},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := NewUBootEnv(32, false)
			if err != nil {
				t.Fatal(err)
			}
			err = e.Set(tt.key, tt.value)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Set(%q, %q) = %v, want %v", tt.key, tt.value, err, tt.want)
			}
			if err != nil && len(e.Vars()) != 0 {
				t.Errorf("after failed Set, Vars() = %v, want empty", e.Vars())
			}
			if err == nil {
				if _, err := e.Encode(); err != nil {
					t.Errorf("Encode() = %v", err)
				}
			}
		})
	}
}

func TestUBootSetEmptyUnsets(t *testing.T) {
	e, _ := NewUBootEnv(64, false)
	e.Set("a", "1")
	if err := e.Set("a", ""); err != nil {
		t.Fatal(err)
	}
	if v, ok := e.Get("a"); ok {
		t.Errorf(`Get("a") = %q, true after Set("a", ""); want unset`, v)
	}
	if err := e.Unset("a=b"); !errors.Is(err, ErrInvalidName) {
		t.Errorf(`Unset("a=b") = %v, want ErrInvalidName`, err)
	}
}

// TestRedundantCounterWrap is the regression test for fwup #214: after the
// 8-bit counter wraps, the copy with the newer (smaller) counter must win.
func TestRedundantCounterWrap(t *testing.T) {
	for n := 0; n < 256; n++ {
		older, newerFlag := byte(n), byte(n+1)
		if got := newer(SchemeCounter, older, newerFlag); got != 1 {
			t.Errorf("newer(counter, %d, %d) = %d, want 1", older, newerFlag, got)
		}
		if got := newer(SchemeCounter, newerFlag, older); got != 0 {
			t.Errorf("newer(counter, %d, %d) = %d, want 0", newerFlag, older, got)
		}
	}
}

func TestNewerActive(t *testing.T) {
	tests := []struct {
		f0, f1 byte
		want   int
	}{
		{1, 0, 0},
		{0, 1, 1},
		{1, 1, 0}, // cut before the old copy was marked obsolete
		{0, 0, 0},
		{0xFF, 0, 0},
		{0, 0xFF, 1},
		{0xFF, 1, 0},
		{1, 0xFF, 1},
	}
	for _, tt := range tests {
		if got := newer(SchemeActive, tt.f0, tt.f1); got != tt.want {
			t.Errorf("newer(active, %d, %d) = %d, want %d", tt.f0, tt.f1, got, tt.want)
		}
	}
	if got := newer(SchemeCounter, 5, 5); got != 0 {
		t.Errorf("newer(counter, 5, 5) = %d, want 0", got)
	}
}

func TestFlagSchemeText(t *testing.T) {
	for _, s := range []FlagScheme{SchemeAuto, SchemeCounter, SchemeActive} {
		var got FlagScheme
		if err := got.UnmarshalText([]byte(s.String())); err != nil || got != s {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v", s, got, err, s)
		}
	}
	var s FlagScheme
	if err := s.UnmarshalText([]byte("boolean")); !errors.Is(err, ErrConfig) {
		t.Errorf(`UnmarshalText("boolean") = %v, want ErrConfig`, err)
	}
}
