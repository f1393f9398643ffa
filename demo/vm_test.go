package demo

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/lifeboat-updater/lifeboat/internal/vm"
)

// bootDisk powers on an x86_64 VM from disk alone (SeaBIOS, then the
// disk's boot code), as the demo board does. QEMU is killed when the test
// ends.
func bootDisk(t *testing.T, disk string) *vm.VM {
	t.Helper()
	return vm.StartT(t, vm.Options{
		DiskBoot: true,
		Memory:   256,
		Drives:   []vm.Drive{{Path: disk}},
	})
}

// expect waits for s on the VM's console; timeout is how long the guest
// may print nothing.
func expect(t *testing.T, v *vm.VM, s string, timeout time.Duration) {
	t.Helper()
	if err := v.ExpectString(s, timeout); err != nil {
		t.Fatalf("waiting for %q: %v", s, err)
	}
}

// waitOff waits for QEMU to end: the guest powered off, or rebooted
// (QEMU runs with -no-reboot).
func waitOff(t *testing.T, v *vm.VM, timeout time.Duration) {
	t.Helper()
	if err := v.WaitTimeout(timeout); err != nil {
		t.Fatalf("VM did not end: %v", err)
	}
}

// needVM skips a test that boots QEMU where that cannot work.
func needVM(t *testing.T, tools ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a VM; skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (the kernel is fetched with apt-get; CI runs as root)")
	}
	for _, tool := range append([]string{"qemu-system-x86_64"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
}

func fmtDur(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }
