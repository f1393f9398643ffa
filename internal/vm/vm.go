// Package vm runs a QEMU virtual machine for tests: a kernel and an
// initramfs, disks, NICs, USB sticks and a watchdog device, with the serial
// console captured so a test can wait for what the guest prints.
//
// It runs qemu-system-x86_64 (Debian package qemu-system-x86) with TCG: the
// machines these tests run on have no usable KVM. A boot to the rescue's
// /init takes a few seconds.
package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Defaults for Options.
const (
	DefaultQEMU   = "qemu-system-x86_64"
	DefaultAppend = "console=ttyS0 panic=-1"
	// NoTimerCheck is added to every kernel command line: under TCG on a
	// loaded host, the x86 kernel's check that the IO-APIC timer ticks
	// sees too few ticks and panics at boot ("IO-APIC + timer doesn't
	// work"). The check is for broken chipsets; QEMU's works.
	NoTimerCheck  = "no_timer_check"
	DefaultMemory = 512 // MiB
	DefaultCPU    = "max"
)

var (
	// ErrTimeout reports an Expect that did not see its text in time.
	ErrTimeout = errors.New("vm: timeout waiting for console output")
	// ErrExited reports an Expect or QMP call on a QEMU that has exited.
	ErrExited = errors.New("vm: qemu exited")
	// ErrNoKernel reports Options without a kernel.
	ErrNoKernel = errors.New("vm: no kernel")
)

// Drive is a disk image attached to the guest.
type Drive struct {
	// Path is the host image file.
	Path string
	// Format is the image format; empty means raw.
	Format string
	// Device is the QEMU device that shows the drive to the guest; empty
	// means virtio-blk-pci (/dev/vdX). "usb-storage" makes a USB stick on
	// an xHCI controller (/dev/sdX), "sd-card" an SD card on an SDHCI
	// controller (/dev/mmcblk0); the controllers are added as needed.
	Device string
	// ReadOnly attaches the drive read-only.
	ReadOnly bool
	// Options are more -drive options, comma separated, e.g.
	// "throttling.bps-write=20000000" for flash-like speed.
	Options string
}

// Options describe a virtual machine.
type Options struct {
	QEMU   string // the QEMU binary; empty means DefaultQEMU
	Kernel string // bzImage/vmlinuz; empty with DiskBoot
	Initrd string // initramfs, optional
	Append string // kernel command line; empty means DefaultAppend
	Memory int    // MiB; 0 means DefaultMemory
	CPU    string // -cpu; empty means DefaultCPU ("max": has RDRAND)
	SMP    int    // CPUs; 0 means 1
	// DiskBoot starts the machine from its disks through the firmware
	// (SeaBIOS), as a board powers on, instead of from Kernel: Kernel,
	// Initrd and Append must be empty.
	DiskBoot bool

	Drives []Drive
	// NICs are -nic arguments, e.g. "user,model=virtio-net-pci" or
	// "user,model=e1000,hostfwd=tcp::8080-:80".
	NICs []string
	// Watchdog is a watchdog device model ("i6300esb"); empty means none.
	// When it fires, the guest is reset (WatchdogAction changes that).
	Watchdog       string
	WatchdogAction string // "reset" (default), "poweroff", "pause", "none"
	// AllowReboot lets a guest reboot (or watchdog reset) restart the
	// guest. By default QEMU runs with -no-reboot: a reboot, or a kernel
	// panic (panic=-1), ends QEMU, so a test sees it at once.
	AllowReboot bool
	// Extra are more QEMU arguments.
	Extra []string

	// Console also receives everything the guest prints on its serial
	// console.
	Console io.Writer
	// ConsoleFile, if set, is a file the console is written to.
	ConsoleFile string
}

// VM is a running QEMU.
type VM struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	con     *console
	stderr  *syncBuffer
	tmp     string
	qmpPath string
	file    *os.File

	done    chan struct{} // closed when QEMU has exited
	waitErr error

	qmpMu sync.Mutex
	qmp   *qmpConn
}

// Args returns the QEMU command line for o (without the binary).
func (o Options) Args(qmpSocket string) ([]string, error) {
	if o.DiskBoot {
		if o.Kernel != "" || o.Initrd != "" || o.Append != "" {
			return nil, fmt.Errorf("%w: DiskBoot with a kernel, initrd or command line", ErrNoKernel)
		}
	} else if o.Kernel == "" {
		return nil, ErrNoKernel
	}
	mem := o.Memory
	if mem == 0 {
		mem = DefaultMemory
	}
	cpu := o.CPU
	if cpu == "" {
		cpu = DefaultCPU
	}
	smp := o.SMP
	if smp == 0 {
		smp = 1
	}
	app := o.Append
	if app == "" {
		app = DefaultAppend
	}
	app = withTimerCheckOff(app)
	args := []string{
		"-nodefaults", "-no-user-config", "-display", "none",
		"-machine", "q35", "-accel", "tcg",
		"-cpu", cpu, "-smp", fmt.Sprint(smp), "-m", fmt.Sprint(mem),
		"-chardev", "stdio,id=con0,signal=off", "-serial", "chardev:con0",
	}
	if !o.DiskBoot {
		args = append(args, "-kernel", o.Kernel, "-append", app)
	}
	if o.Initrd != "" {
		args = append(args, "-initrd", o.Initrd)
	}
	if qmpSocket != "" {
		args = append(args, "-qmp", "unix:"+qmpSocket+",server=on,wait=off")
	}
	if !o.AllowReboot {
		args = append(args, "-no-reboot")
	}
	var xhci, sdhci bool
	for i, d := range o.Drives {
		id := fmt.Sprintf("drive%d", i)
		format := d.Format
		if format == "" {
			format = "raw"
		}
		spec := fmt.Sprintf("if=none,id=%s,file=%s,format=%s", id, escape(d.Path), format)
		if d.ReadOnly {
			spec += ",readonly=on"
		}
		if d.Options != "" {
			spec += "," + d.Options
		}
		args = append(args, "-drive", spec)
		switch dev := d.Device; dev {
		case "", "virtio-blk-pci", "virtio-blk":
			args = append(args, "-device", "virtio-blk-pci,drive="+id)
		case "usb-storage":
			if !xhci {
				args = append(args, "-device", "qemu-xhci,id=xhci")
				xhci = true
			}
			args = append(args, "-device", "usb-storage,bus=xhci.0,removable=on,drive="+id)
		case "sd-card":
			if !sdhci {
				args = append(args, "-device", "sdhci-pci")
				sdhci = true
			}
			args = append(args, "-device", "sd-card,drive="+id)
		default:
			args = append(args, "-device", dev+",drive="+id)
		}
	}
	for _, n := range o.NICs {
		args = append(args, "-nic", n)
	}
	if o.Watchdog != "" {
		action := o.WatchdogAction
		if action == "" {
			action = "reset"
		}
		args = append(args, "-device", o.Watchdog, "-action", "watchdog="+action)
	}
	return append(args, o.Extra...), nil
}

// escape doubles commas, QEMU's escape inside an option value.
func escape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// Start starts QEMU. Stop it with Kill (or let the guest power off and
// Wait). ctx ends QEMU too.
func Start(ctx context.Context, o Options) (*VM, error) {
	qemu := o.QEMU
	if qemu == "" {
		qemu = DefaultQEMU
	}
	// A short directory: a unix socket path has at most 108 bytes.
	tmp, err := os.MkdirTemp("", "vm")
	if err != nil {
		return nil, err
	}
	v := &VM{tmp: tmp, qmpPath: filepath.Join(tmp, "qmp"), done: make(chan struct{}), stderr: &syncBuffer{}}
	args, err := o.Args(v.qmpPath)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	v.cmd = exec.CommandContext(ctx, qemu, args...)
	v.cmd.Cancel = func() error { return v.cmd.Process.Kill() }
	out, err := v.cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	if v.stdin, err = v.cmd.StdinPipe(); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	v.cmd.Stderr = v.stderr
	var sinks []io.Writer
	if o.Console != nil {
		sinks = append(sinks, o.Console)
	}
	if o.ConsoleFile != "" {
		if v.file, err = os.Create(o.ConsoleFile); err != nil {
			os.RemoveAll(tmp)
			return nil, err
		}
		sinks = append(sinks, v.file)
	}
	v.con = newConsole(sinks...)
	if err := v.cmd.Start(); err != nil {
		os.RemoveAll(tmp)
		if v.file != nil {
			v.file.Close()
		}
		return nil, fmt.Errorf("vm: %w", err)
	}
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(v.con, out)
		close(copied)
	}()
	go func() {
		<-copied // Wait closes the pipe: read all of it first
		v.waitErr = v.cmd.Wait()
		v.con.close()
		if v.file != nil {
			v.file.Close()
		}
		v.qmpMu.Lock()
		if v.qmp != nil {
			v.qmp.close()
		}
		v.qmpMu.Unlock()
		os.RemoveAll(v.tmp)
		close(v.done)
	}()
	return v, nil
}

// CommandLine is QEMU's command line, for logs.
func (v *VM) CommandLine() string { return strings.Join(v.cmd.Args, " ") }

// ExpectString waits until the console shows s after what earlier Expects
// matched, and moves past it. timeout is how long the guest may print
// nothing (see SlowFactor): a slow guest that makes progress is waited
// for.
func (v *VM) ExpectString(s string, timeout time.Duration) error {
	_, err := v.con.expect(func(b []byte) (int, []string) {
		i := bytes.Index(b, []byte(s))
		if i < 0 {
			return -1, nil
		}
		return i + len(s), []string{s}
	}, timeout, s)
	return v.explain(err)
}

// ExpectRegexp waits until the console shows a match of re after what
// earlier Expects matched, moves past it, and returns the match and its
// submatches.
func (v *VM) ExpectRegexp(re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	m, err := v.con.expect(func(b []byte) (int, []string) {
		loc := re.FindSubmatchIndex(b)
		if loc == nil {
			return -1, nil
		}
		var subs []string
		for i := 0; i < len(loc); i += 2 {
			if loc[i] < 0 {
				subs = append(subs, "")
				continue
			}
			subs = append(subs, string(b[loc[i]:loc[i+1]]))
		}
		return loc[1], subs
	}, timeout, re.String())
	return m, v.explain(err)
}

func (v *VM) explain(err error) error {
	if errors.Is(err, ErrExited) {
		select {
		case <-v.done:
			return fmt.Errorf("%w (%v): %s", err, v.waitErr, strings.TrimSpace(v.stderr.String()))
		case <-time.After(time.Second):
		}
	}
	return err
}

// Console returns everything the guest printed so far.
func (v *VM) Console() string { return v.con.String() }

// Write sends bytes to the guest's serial console.
func (v *VM) Write(p []byte) (int, error) { return v.stdin.Write(p) }

// Kill ends QEMU at once, like pulling the board's power, and waits for
// it to be gone.
func (v *VM) Kill() error {
	select {
	case <-v.done:
		return nil
	default:
	}
	err := v.cmd.Process.Signal(syscall.SIGKILL)
	<-v.done
	if errors.Is(err, os.ErrProcessDone) {
		err = nil
	}
	return err
}

// Wait waits for QEMU to exit (the guest powered off, or rebooted without
// AllowReboot) and returns how it exited.
func (v *VM) Wait() error {
	<-v.done
	return v.waitErr
}

// WaitTimeout is Wait with a limit; it returns ErrTimeout if QEMU still
// runs after its console has been silent for d (or after SlowFactor times
// d while it keeps printing).
func (v *VM) WaitTimeout(d time.Duration) error {
	if v.con.waitWhileBusy(v.done, d) {
		return v.waitErr
	}
	return fmt.Errorf("%w: qemu still running, its console silent for %v", ErrTimeout, d)
}

// Done is closed when QEMU has exited.
func (v *VM) Done() <-chan struct{} { return v.done }

// Stderr is what QEMU itself printed (warnings, errors).
func (v *VM) Stderr() string { return v.stderr.String() }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// withTimerCheckOff adds NoTimerCheck to a command line without it.
func withTimerCheckOff(cmdline string) string {
	for _, f := range strings.Fields(cmdline) {
		if f == NoTimerCheck {
			return cmdline
		}
	}
	return cmdline + " " + NoTimerCheck
}
