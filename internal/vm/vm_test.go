package vm

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestArgs(t *testing.T) {
	base := []string{
		"-nodefaults", "-no-user-config", "-display", "none",
		"-machine", "q35", "-accel", "tcg",
	}
	for _, tt := range []struct {
		name string
		o    Options
		want []string // after base
	}{
		{
			name: "defaults",
			o:    Options{Kernel: "k"},
			want: []string{"-cpu", "max", "-smp", "1", "-m", "512",
				"-chardev", "stdio,id=con0,signal=off", "-serial", "chardev:con0",
				"-kernel", "k", "-append", DefaultAppend + " " + NoTimerCheck, "-qmp", "unix:/s,server=on,wait=off", "-no-reboot"},
		},
		{
			name: "everything",
			o: Options{
				Kernel: "k", Initrd: "i", Append: "console=ttyS0 x", Memory: 256, CPU: "qemu64", SMP: 2,
				Drives: []Drive{
					{Path: "a,b.img"},
					{Path: "u.img", Device: "usb-storage", ReadOnly: true},
					{Path: "u2.qcow2", Format: "qcow2", Device: "usb-storage"},
					{Path: "sd.img", Device: "sd-card", Options: "throttling.bps-write=20000000"},
					{Path: "n.img", Device: "nvme,serial=x"},
				},
				NICs:        []string{"user,model=virtio-net-pci"},
				Watchdog:    "i6300esb",
				AllowReboot: true,
				Extra:       []string{"-S"},
			},
			want: []string{"-cpu", "qemu64", "-smp", "2", "-m", "256",
				"-chardev", "stdio,id=con0,signal=off", "-serial", "chardev:con0",
				"-kernel", "k", "-append", "console=ttyS0 x no_timer_check", "-initrd", "i", "-qmp", "unix:/s,server=on,wait=off",
				"-drive", "if=none,id=drive0,file=a,,b.img,format=raw", "-device", "virtio-blk-pci,drive=drive0",
				"-drive", "if=none,id=drive1,file=u.img,format=raw,readonly=on", "-device", "qemu-xhci,id=xhci",
				"-device", "usb-storage,bus=xhci.0,removable=on,drive=drive1",
				"-drive", "if=none,id=drive2,file=u2.qcow2,format=qcow2", "-device", "usb-storage,bus=xhci.0,removable=on,drive=drive2",
				"-drive", "if=none,id=drive3,file=sd.img,format=raw,throttling.bps-write=20000000", "-device", "sdhci-pci",
				"-device", "sd-card,drive=drive3",
				"-drive", "if=none,id=drive4,file=n.img,format=raw", "-device", "nvme,serial=x,drive=drive4",
				"-nic", "user,model=virtio-net-pci",
				"-device", "i6300esb", "-action", "watchdog=reset",
				"-S"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.o.Args("/s")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(append(base, tt.want...), got); diff != "" {
				t.Errorf("Args mismatch (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := (Options{}).Args(""); !errors.Is(err, ErrNoKernel) {
		t.Errorf("Args without kernel = %v, want ErrNoKernel", err)
	}
}

func TestConsoleExpect(t *testing.T) {
	c := newConsole()
	v := &VM{con: c, done: make(chan struct{}), stderr: &syncBuffer{}}
	go func() {
		for _, s := range []string{"Linux version 6.1\r\n", "lifeboat: re", "ady\r\n", "Linux version 6.2\r\n"} {
			time.Sleep(5 * time.Millisecond)
			c.Write([]byte(s))
		}
	}()
	re := regexp.MustCompile(`Linux version (\S+)`)
	m, err := v.ExpectRegexp(re, 5*time.Second)
	if err != nil || m[1] != "6.1" {
		t.Fatalf("ExpectRegexp = %q, %v, want 6.1", m, err)
	}
	if err := v.ExpectString("lifeboat: ready", 5*time.Second); err != nil {
		t.Fatalf("ExpectString across writes = %v", err)
	}
	// The cursor moved past the first match: this finds the second boot.
	m, err = v.ExpectRegexp(re, 5*time.Second)
	if err != nil || m[1] != "6.2" {
		t.Fatalf("second ExpectRegexp = %q, %v, want 6.2", m, err)
	}
	if err := v.ExpectString("Linux version", 50*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Errorf("ExpectString of consumed text = %v, want ErrTimeout", err)
	}
	c.close()
	close(v.done)
	if err := v.ExpectString("never", time.Second); !errors.Is(err, ErrExited) {
		t.Errorf("ExpectString after exit = %v, want ErrExited", err)
	}
	if !strings.Contains(v.Console(), "lifeboat: ready") {
		t.Errorf("Console() = %q, want all output", v.Console())
	}
}

// TestBootKernelOnly boots the Debian kernel without an initramfs: it
// panics (no root file system), and with panic=-1 and -no-reboot QEMU ends.
// It exercises Start, Expect, QMP and Wait on a real QEMU.
func TestBootKernelOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU; skipped with -short")
	}
	k := DebianKernel(t)
	v := StartT(t, Options{Kernel: k.Image(), Append: "console=ttyS0 panic=-1 quiet", Memory: 256})
	st, err := v.Status()
	if err != nil || st != "running" {
		t.Errorf("Status() = %q, %v, want running", st, err)
	}
	if err := v.SendKey("shift", "a"); err != nil {
		t.Errorf("SendKey = %v", err)
	}
	if err := v.ExpectString("Kernel panic", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := v.WaitTimeout(time.Minute); err != nil {
		t.Errorf("Wait after the panic = %v, want QEMU to end cleanly", err)
	}
	if _, err := v.QMP("query-status", nil); !errors.Is(err, ErrExited) {
		t.Errorf("QMP after exit = %v, want ErrExited", err)
	}
	if err := v.Kill(); err != nil {
		t.Errorf("Kill after exit = %v", err)
	}
}

func TestKill(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU; skipped with -short")
	}
	k := DebianKernel(t)
	v := StartT(t, Options{Kernel: k.Image(), Append: "console=ttyS0 quiet", Memory: 256})
	if err := v.Kill(); err != nil {
		t.Fatalf("Kill = %v", err)
	}
	select {
	case <-v.Done():
	default:
		t.Error("Kill returned before QEMU was gone")
	}
}
