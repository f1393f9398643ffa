package boards

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRecoveryResolved(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Recovery
		want Recovery
	}{
		{
			name: "grub preset",
			in:   Recovery{Preset: "grub", State: []string{"data"}},
			want: Recovery{Preset: "grub", Marker: "lifeboat_transaction", MarkerValue: "1", Counter: "boot_count",
				LimitVar: "boot_limit", Limit: 3, CounterReset: "0", State: []string{"data"}},
		},
		{
			name: "preset with overrides",
			in:   Recovery{Preset: "swupdate", Limit: 5, OnSuccess: map[string]string{"extra": "x"}, SecurityVersion: "sv"},
			want: Recovery{Preset: "swupdate", Marker: "recovery_status", MarkerValue: "in_progress", Counter: "bootcount",
				LimitVar: "bootlimit", Limit: 5, CounterReset: "0", OnSuccess: map[string]string{"ustate": "1", "extra": "x"}, SecurityVersion: "sv"},
		},
		{
			name: "count down resets to the limit",
			in:   Recovery{Preset: "rauc"},
			want: Recovery{Preset: "rauc", Marker: "lifeboat_transaction", MarkerValue: "1", Counter: "BOOT_A_LEFT", CountDown: true,
				Limit: 3, CounterReset: "3", OnSuccess: map[string]string{"BOOT_ORDER": "A"}},
		},
		{
			name: "own scheme",
			in:   Recovery{Marker: "txn", Counter: "n", Limit: 2, Button: &Button{Key: "BTN_0"}},
			want: Recovery{Marker: "txn", MarkerValue: "1", Counter: "n", Limit: 2, CounterReset: "0",
				Button: &Button{Key: "BTN_0", Input: "/dev/input/event*", LongSeconds: 5, WaitSeconds: 2}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.in.Resolved()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Resolved() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRecoveryInvalid(t *testing.T) {
	const head = `{"name": "b", "storage": {"disk": "/dev/vda"}, "bootenv": {"env": {"type": "grub", "path": "/boot/grubenv"}}, "recovery": `
	for _, tc := range []struct{ recovery, want string }{
		{`{"preset": "nope"}`, "preset"},
		{`{"marker": "m", "marker_value": "1", "marker_clear": "1"}`, "the same value"},
		{`{"button": {}}`, "key or a gpio"},
		{`{"button": {"key": "KEY_NOPE"}}`, "KEY_NOPE"},
		{`{"button": {"gpio": "gpiochip0"}}`, "CHIP:LINE"},
		{`{"button": {"key": "KEY_R", "gpio": "gpiochip0:1"}}`, "exclude"},
		{`{"state": [""]}`, "empty target"},
		{`{"stat": ["data"]}`, "unknown field"},
	} {
		_, err := Parse([]byte(head + tc.recovery + "}"))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(recovery %s) = %v, want ErrInvalid with %q", tc.recovery, err, tc.want)
		}
	}
	p, err := Parse([]byte(head + `{"preset": "grub", "bootenv": "other"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.RecoveryEnv(); !errors.Is(err, ErrInvalid) {
		t.Errorf("RecoveryEnv with an unknown bootenv = %v, want ErrInvalid", err)
	}
	p.Recovery.BootEnv = ""
	if n, err := p.RecoveryEnv(); n != "env" || err != nil {
		t.Errorf("RecoveryEnv = %q, %v; want the only entry, env", n, err)
	}
}

func TestKeyCode(t *testing.T) {
	for in, want := range map[string]int{"KEY_R": 19, "key_esc": 1, "0x100": 256, "28": 28} {
		if got, err := KeyCode(in); got != want || err != nil {
			t.Errorf("KeyCode(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := KeyCode("0x300"); err == nil {
		t.Errorf("KeyCode(0x300) accepted a code past KEY_MAX")
	}
}

func TestBuiltinRecovery(t *testing.T) {
	p, err := Builtin("qemu-x86_64")
	if err != nil {
		t.Fatal(err)
	}
	if p.Recovery == nil {
		t.Fatal("qemu-x86_64 has no recovery section")
	}
	if n, err := p.RecoveryEnv(); n != "grubenv" || err != nil {
		t.Errorf("RecoveryEnv = %q, %v; want grubenv", n, err)
	}
}
