package test

import (
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-updater/lifeboat/demo"
	"github.com/lifeboat-updater/lifeboat/internal/vm"
	"github.com/lifeboat-updater/lifeboat/rescue"
)

// keyboardUp is what the kernel prints once the PC's keyboard (i8042,
// atkbd: built into the Debian kernel) is an input device.
const keyboardUp = "input: AT Translated Set 2 keyboard"

// holdKey presses (down) or lets go of the board's recovery button, the
// qemu-x86_64 profile's KEY_R, on the PC keyboard, through QMP.
func holdKey(t *testing.T, v *vm.VM, down bool) {
	t.Helper()
	ev := map[string]any{"type": "key", "data": map[string]any{
		"down": down, "key": map[string]any{"type": "qcode", "data": "r"},
	}}
	if _, err := v.QMP("input-send-event", map[string]any{"events": []any{ev}}); err != nil {
		t.Fatal(err)
	}
}

// TestButton holds the board's button at power-on: a short hold asks for
// a reinstall, a long one (the profile's long_seconds, 3) for a factory
// reset, which wipes the state partition and nothing else. The key is
// pressed once the keyboard driver is up and before the rescue starts,
// as a person holds a button through power-on; the rescue reads it with
// EVIOCGKEY and times the hold from the key's events.
func TestButton(t *testing.T) {
	t.Parallel()
	p := prepared(t)
	for _, tc := range []struct {
		name string
		long bool
	}{
		{"short", false},
		{"long", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			disk, data := installedDisk(t, p)
			before := outside(t, disk, data)
			v, tl := bootRescue(t, p, rescueBoot{Disk: disk, NICs: []string{"none"}})
			expect(t, v, keyboardUp, 90*time.Second)
			holdKey(t, v, true)
			expect(t, v, "lifeboat: "+rescue.MsgButtonHeld, 90*time.Second)
			if !tc.long {
				holdKey(t, v, false)
				expect(t, v, demo.MarkReason+"button held", 30*time.Second)
				expect(t, v, "(short)", 5*time.Second)
				expect(t, v, "; action: reinstall", 5*time.Second)
				v.Kill()
				if after := outside(t, disk, data); after != before {
					t.Errorf("a short hold changed the disk")
				}
				return
			}
			expect(t, v, demo.MarkReason+"button held", 30*time.Second)
			expect(t, v, "(long)", 5*time.Second)
			expect(t, v, "; action: factory reset", 5*time.Second)
			holdKey(t, v, false)
			expect(t, v, "lifeboat: "+rescue.MsgFactoryReset, time.Minute)
			expect(t, v, demo.MarkRebooting, 30*time.Second)
			if err := v.WaitTimeout(time.Minute); err != nil {
				t.Fatalf("the rescue did not reboot: %v", err)
			}
			held, _ := tl.First(rescue.MsgButtonHeld)
			reason, _ := tl.First(demo.MarkReason)
			for _, l := range tl.Lines() {
				if strings.Contains(l.Text, demo.MarkReason) {
					t.Logf("MEASURE button %s: held seen at %v, decided at %v: %s", tc.name, held.Round(10*time.Millisecond), reason.Round(10*time.Millisecond), l.Text)
				}
			}
			checkWiped(t, disk, data, before)
		})
	}
}
