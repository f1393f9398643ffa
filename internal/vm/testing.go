package vm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// StartT starts a VM for a test. It skips the test if QEMU is not
// installed, copies the console to the test log line by line (with the time
// since start) and to a file (in $LIFEBOAT_VM_LOGS if set, else in the
// test's temporary directory), and kills QEMU when the test ends.
func StartT(t testing.TB, o Options) *VM {
	t.Helper()
	qemu := o.QEMU
	if qemu == "" {
		qemu = DefaultQEMU
	}
	if _, err := exec.LookPath(qemu); err != nil {
		t.Skipf("%s not installed (Debian package qemu-system-x86): %v", qemu, err)
	}
	lw := &lineWriter{t: t, start: time.Now()}
	if o.Console != nil {
		o.Console = multiWriter{o.Console, lw}
	} else {
		o.Console = lw
	}
	if o.ConsoleFile == "" {
		dir := os.Getenv("LIFEBOAT_VM_LOGS")
		if dir == "" {
			dir = t.TempDir()
		} else if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		o.ConsoleFile = filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())+".console.log")
	}
	v, err := Start(context.Background(), o)
	if err != nil {
		t.Fatalf("vm.Start: %v", err)
	}
	t.Logf("qemu: %s", v.CommandLine())
	t.Cleanup(func() {
		if err := v.Kill(); err != nil {
			t.Errorf("vm.Kill: %v", err)
		}
		lw.flush()
		if s := strings.TrimSpace(v.Stderr()); s != "" {
			t.Logf("qemu stderr: %s", s)
		}
		t.Logf("console log: %s", o.ConsoleFile)
	})
	return v
}

type multiWriter []interface{ Write([]byte) (int, error) }

func (m multiWriter) Write(p []byte) (int, error) {
	for _, w := range m {
		_, _ = w.Write(p)
	}
	return len(p), nil
}

// lineWriter logs whole lines to a test.
type lineWriter struct {
	t     testing.TB
	start time.Time
	mu    sync.Mutex
	buf   []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.log(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *lineWriter) log(line []byte) {
	w.t.Logf("[%6.2fs] %s", time.Since(w.start).Seconds(), strings.TrimRight(string(line), "\r"))
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.log(w.buf)
		w.buf = nil
	}
}

// Kernel is an unpacked Debian kernel package (see scripts/fetch-kernel.sh).
type Kernel struct {
	KVer    string // uname -r
	Vmlinuz string // the compressed kernel image, as a bootloader loads it
	Vmlinux string // the same unpacked (ELF, PVH entry); empty if unavailable
	Modules string // lib/modules/KVER, with modules.dep
	Root    string // where the package was unpacked
}

// Image is the kernel file tests should boot: Vmlinux if there is one.
// QEMU enters it directly (PVH), which under TCG saves the 4-5 s the
// compressed kernel takes to unpack itself; the kernel that runs is the
// same.
func (k Kernel) Image() string {
	if k.Vmlinux != "" {
		return k.Vmlinux
	}
	return k.Vmlinuz
}

// ErrNoModuleRoot reports a working directory outside the project.
var ErrNoModuleRoot = errors.New("vm: go.mod not found above the working directory")

// ModuleRoot returns the directory of the go.mod above the working
// directory (tests run in their package's directory).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", ErrNoModuleRoot
		}
		dir = parent
	}
}

// CacheDir is where fetched kernels are kept: $LIFEBOAT_CACHE/kernel, else
// .cache/kernel in the module root.
func CacheDir() (string, error) {
	if c := os.Getenv("LIFEBOAT_CACHE"); c != "" {
		return filepath.Join(c, "kernel"), nil
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, ".cache", "kernel"), nil
}

var fetchMu sync.Mutex

// FetchKernel runs scripts/fetch-kernel.sh for cacheDir (it downloads the
// pinned Debian kernel once) and returns what it unpacked.
func FetchKernel(ctx context.Context, cacheDir string) (Kernel, error) {
	fetchMu.Lock()
	defer fetchMu.Unlock()
	root, err := ModuleRoot()
	if err != nil {
		return Kernel{}, err
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "fetch-kernel.sh"), cacheDir)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return Kernel{}, fmt.Errorf("vm: fetch-kernel.sh: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	var k Kernel
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		key, val, _ := strings.Cut(sc.Text(), "=")
		switch key {
		case "KVER":
			k.KVer = val
		case "VMLINUZ":
			k.Vmlinuz = val
		case "VMLINUX":
			k.Vmlinux = val
		case "MODULES":
			k.Modules = val
		case "ROOT":
			k.Root = val
		}
	}
	if k.KVer == "" || k.Vmlinuz == "" {
		return Kernel{}, fmt.Errorf("vm: fetch-kernel.sh printed no kernel: %q", out)
	}
	return k, nil
}

// DebianKernel returns the kernel the VM tests boot, fetching it on first
// use. It skips the test where no kernel can be had: no cached one and no
// apt-get (not a Debian host).
func DebianKernel(t testing.TB) Kernel {
	t.Helper()
	dir, err := CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	k, err := FetchKernel(context.Background(), dir)
	if err != nil {
		if _, lerr := exec.LookPath("apt-get"); lerr != nil {
			t.Skipf("no Debian kernel cached in %s and no apt-get to fetch one: %v", dir, err)
		}
		t.Fatal(err)
	}
	return k
}

// GuestResults waits for the last line of a test guest made with
// internal/vm/guest, "<prefix>: done", and for QEMU to power off; then it
// decodes every "<prefix>: {...}" result line of the console into a T, in
// the order the guest printed them.
func GuestResults[T any](t testing.TB, v *VM, prefix string, timeout time.Duration) []T {
	t.Helper()
	if err := v.ExpectString(prefix+": done", timeout); err != nil {
		t.Fatal(err)
	}
	if err := v.WaitTimeout(time.Minute); err != nil {
		t.Errorf("QEMU did not power off: %v", err)
	}
	rs, err := decodeResults[T](v.Console(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func decodeResults[T any](console, prefix string) ([]T, error) {
	var rs []T
	sc := bufio.NewScanner(strings.NewReader(console))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		_, js, ok := strings.Cut(sc.Text(), prefix+": {")
		if !ok {
			continue
		}
		var r T
		if err := json.Unmarshal([]byte("{"+strings.TrimSpace(js)), &r); err != nil {
			return nil, fmt.Errorf("console line %q: %w", sc.Text(), err)
		}
		rs = append(rs, r)
	}
	return rs, sc.Err()
}
