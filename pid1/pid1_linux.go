package pid1

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	nosuid = unix.MS_NOSUID
	nodev  = unix.MS_NODEV
	noexec = unix.MS_NOEXEC
)

// EarlyMounts are the steps PID 1 takes before anything else. The order
// matters: /dev/pts lives on devtmpfs; the symlinks point into /proc.
// /tmp and /run are tmpfs so that they are limited and swept at reboot.
var EarlyMounts = []Step{
	Mount{Source: "proc", Target: "/proc", FSType: "proc", Flags: nosuid | nodev | noexec},
	Mount{Source: "sysfs", Target: "/sys", FSType: "sysfs", Flags: nosuid | nodev | noexec},
	Mount{Source: "devtmpfs", Target: "/dev", FSType: "devtmpfs", Flags: nosuid, Data: "mode=0755"},
	Mount{Source: "devpts", Target: "/dev/pts", FSType: "devpts", Flags: nosuid | noexec, Data: "ptmxmode=0666,mode=0620"},
	Mount{Source: "tmpfs", Target: "/run", FSType: "tmpfs", Flags: nosuid | nodev, Data: "mode=0755"},
	Mount{Source: "tmpfs", Target: "/tmp", FSType: "tmpfs", Flags: nosuid | nodev, Data: "mode=1777"},
	Mount{Source: "debugfs", Target: "/sys/kernel/debug", FSType: "debugfs", Flags: nosuid | nodev | noexec, Optional: true},
	Symlink{Target: "/proc/self/fd", Path: "/dev/fd"},
	Symlink{Target: "/proc/self/fd/0", Path: "/dev/stdin"},
	Symlink{Target: "/proc/self/fd/1", Path: "/dev/stdout"},
	Symlink{Target: "/proc/self/fd/2", Path: "/dev/stderr"},
}

// OS is the System that makes the real system calls.
type OS struct{}

func (OS) MkdirAll(path string, perm fs.FileMode) error { return os.MkdirAll(path, perm) }

func (OS) Mount(source, target, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return &os.PathError{Op: "mount " + fstype, Path: target, Err: err}
	}
	return nil
}

func (OS) Symlink(oldname, newname string) error { return os.Symlink(oldname, newname) }

// Run brings the system up and runs cfg.Flow forever. It never returns.
//
// Order and why: signals first (Go's default for SIGTERM would exit PID 1);
// mounts (everything else needs /proc, /sys, /dev); the console and kernel
// log; the watchdog if its driver is built in, before module loading could
// hang; the modules; the watchdog if a module brought it; the reaper; the
// flow.
func Run(cfg Config) {
	os.Setenv("PATH", "/bin:/bbin:/ubin:/sbin:/usr/bin")
	log := NewLogger(os.Stdout, nil) // the console the kernel opened for us
	go handleSignals(log)
	if err := RunSteps(OS{}, EarlyMounts, log); err != nil {
		log.Printf("early mounts: %v", err)
	}
	log = openLogger()

	cmdline, err := ReadCmdline(CmdlinePath)
	if err != nil {
		log.Printf("kernel command line: %v", err)
	}
	params := Params(cmdline)
	if cfg.BoardProfile == "" {
		cfg.BoardProfile = BoardProfilePath
	}
	profile, err := os.ReadFile(cfg.BoardProfile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		log.Printf("board profile: %v", err)
	}

	board, err := readBoardPlatform(profile)
	if err != nil {
		log.Printf("%v; loading every module", err)
	}
	wdPath, timeout, grace, wdOff := watchdogSettings(cfg, board, params, log)
	var wd *Watchdog
	if !wdOff {
		wd = startWatchdog(wdPath, timeout, grace, log)
	}
	loaded := LoadModules(log, board.Modules)
	if wd == nil && !wdOff {
		wd = startWatchdog(wdPath, timeout, grace, log)
	}
	if wd == nil {
		log.Printf("no watchdog")
	}

	env := &Env{
		Log:          log,
		Cmdline:      cmdline,
		Params:       params,
		BoardProfile: profile,
		Modules:      loaded,
		Watchdog:     wd,
		EntropyReady: EntropyReady(),
		reboot:       Reboot,
		powerOff:     PowerOff,
		execMu:       new(sync.RWMutex),
	}
	go reapOrphans(context.Background(), env.execMu)
	if !env.EntropyReady {
		log.Printf("kernel RNG not seeded yet (no hardware RNG?); nothing at boot waits for it")
	}
	if _, ok := params["shell"]; ok {
		go runShell(env)
	}
	flow := cfg.Flow
	if flow == nil {
		flow = DefaultFlow
	}
	supervise(context.Background(), env, flow, DefaultBackoff(), sleepAlive(env))
	// supervise returns only when its context ends, which this one never
	// does. Should that change, PID 1 still must not return; a sleeping
	// loop (not select{}) keeps the runtime from calling it a deadlock.
	for {
		time.Sleep(time.Hour)
	}
}

// openLogger opens the console and the kernel log, now that devtmpfs is up.
func openLogger() Logger {
	var console, kmsg *os.File
	if f, err := os.OpenFile("/dev/console", os.O_WRONLY|unix.O_NOCTTY, 0); err == nil {
		console = f
	} else {
		console = os.Stdout
	}
	if f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
		kmsg = f
	}
	if kmsg == nil {
		return NewLogger(console, nil)
	}
	return NewLogger(console, kmsg)
}

// handleSignals catches the signals that would otherwise end PID 1: Go's
// runtime exits on SIGTERM, SIGINT, SIGHUP and SIGQUIT when nobody listens.
func handleSignals(log Logger) {
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT,
		unix.SIGUSR1, unix.SIGUSR2, unix.SIGPWR)
	for s := range ch {
		log.Printf("signal %v ignored", s)
	}
}

// reapOrphans waits for every child that ends, as PID 1 must, or orphans
// pile up as zombies. It takes mu for writing, and Env.Exec holds it for
// reading, so that it does not steal the status of a command Exec waits
// for.
func reapOrphans(ctx context.Context, mu *sync.RWMutex) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, unix.SIGCHLD)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
		mu.Lock()
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil || pid <= 0 {
				break
			}
		}
		mu.Unlock()
	}
}

// watchdogSettings picks the watchdog device, timeout and grace: cfg
// first, then lifeboat.watchdog and lifeboat.watchdog_grace, then the board
// profile. off reports lifeboat.watchdog=off (or 0): leave the device
// alone.
func watchdogSettings(cfg Config, board boardPlatform, params map[string]string, log Logger) (path string, timeout, grace time.Duration, off bool) {
	path, timeout, grace = WatchdogPath, cfg.WatchdogTimeout, cfg.WatchdogGrace
	if w := board.Watchdog; w != nil {
		if w.Device != "" {
			path = w.Device
		}
		if timeout == 0 && w.TimeoutSeconds > 0 {
			timeout = time.Duration(w.TimeoutSeconds) * time.Second
		}
	}
	if v, ok := params["watchdog"]; ok && cfg.WatchdogTimeout == 0 {
		if v == "off" || v == "0" {
			return "", 0, 0, true
		}
		if d, err := ParseDuration(v); err != nil {
			log.Printf("lifeboat.watchdog: %v", err)
		} else {
			timeout = d
		}
	}
	if v, ok := params["watchdog_grace"]; ok && grace == 0 {
		if d, err := ParseDuration(v); err != nil {
			log.Printf("lifeboat.watchdog_grace: %v", err)
		} else {
			grace = d
		}
	}
	return path, timeout, grace, false
}

// startWatchdog opens the watchdog device at path and starts petting it.
// It returns nil if there is none.
func startWatchdog(path string, timeout, grace time.Duration, log Logger) *Watchdog {
	dev, err := OpenWatchdog(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		log.Printf("watchdog: %v", err)
		return nil
	}
	w := NewWatchdog(dev, timeout, grace, log)
	go w.Run(context.Background())
	log.Printf("watchdog armed: resets %v after the flow stops showing life for %v", w.Timeout(), w.Grace())
	return w
}

// watchdogFile is a Linux watchdog device (or, in tests, a plain file).
type watchdogFile struct{ f *os.File }

// OpenWatchdog opens a Linux watchdog device. Opening starts the
// countdown.
func OpenWatchdog(path string) (WatchdogDevice, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	return &watchdogFile{f}, nil
}

// KeepAlive writes to the device, which every driver takes as a pet (a
// write works on a test file too, where the ioctl would not).
func (w *watchdogFile) KeepAlive() error {
	_, err := w.f.Write([]byte{'1'})
	return err
}

// SetTimeout implements WatchdogDevice with WDIOC_SETTIMEOUT (whole
// seconds).
func (w *watchdogFile) SetTimeout(d time.Duration) (time.Duration, error) {
	secs := int(d / time.Second)
	if secs < 1 {
		secs = 1
	}
	fd := int(w.f.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.WDIOC_SETTIMEOUT, secs); err != nil {
		return 0, &os.PathError{Op: "WDIOC_SETTIMEOUT", Path: w.f.Name(), Err: err}
	}
	got, err := unix.IoctlGetInt(fd, unix.WDIOC_GETTIMEOUT)
	if err != nil {
		return time.Duration(secs) * time.Second, nil
	}
	return time.Duration(got) * time.Second, nil
}

// EntropyReady reports whether the kernel's RNG is seeded, without
// waiting for it.
func EntropyReady() bool {
	var b [1]byte
	_, err := unix.Getrandom(b[:], unix.GRND_NONBLOCK)
	return err == nil
}

// Reboot syncs file systems and restarts the board. It returns only on
// failure (not PID 1, no CAP_SYS_BOOT).
func Reboot() error { return shutdown(unix.LINUX_REBOOT_CMD_RESTART, "reboot") }

// PowerOff syncs file systems and powers the board off. It returns only on
// failure.
func PowerOff() error { return shutdown(unix.LINUX_REBOOT_CMD_POWER_OFF, "power off") }

func shutdown(cmd int, what string) error {
	unix.Sync()
	if err := unix.Reboot(cmd); err != nil {
		return fmt.Errorf("pid1: %s: %w", what, err)
	}
	return nil
}

// runShell keeps a shell on the console's terminal, for images built with
// a shell (initramfs Options.Debug) booted with lifeboat.shell.
func runShell(env *Env) {
	sh := "/bin/sh"
	if _, err := os.Stat(sh); err != nil {
		env.Log.Printf("lifeboat.shell: this image has no shell")
		return
	}
	tty := "/dev/console"
	// /dev/console cannot be a controlling terminal: use the device behind it.
	if b, err := os.ReadFile("/sys/class/tty/console/active"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			tty = filepath.Join("/dev", f[len(f)-1])
		}
	}
	for {
		f, err := os.OpenFile(tty, os.O_RDWR, 0)
		if err != nil {
			env.Log.Printf("shell: %v", err)
			return
		}
		cmd := exec.Command(sh)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = f, f, f
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
		err = env.Exec(cmd)
		f.Close()
		env.Log.Printf("shell exited (%v), starting another", err)
		time.Sleep(time.Second)
	}
}
