package demo

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-updater/lifeboat/internal/vm"
)

// console is a QEMU run whose serial console the test reads.
type console struct {
	t     *testing.T
	cmd   *exec.Cmd
	start time.Time

	mu     sync.Mutex
	out    bytes.Buffer
	seen   int // bytes of out consumed by Expect
	notify chan struct{}
	eof    chan struct{} // closed when all the output is in out
	done   chan struct{}
	err    error // from Wait, once done is closed
}

// startQEMU boots an x86_64 VM with its serial console on stdout. The VM
// is killed when the test ends.
func startQEMU(t *testing.T, args ...string) *console {
	t.Helper()
	base := []string{"-accel", "tcg", "-cpu", "max", "-m", "256", "-nographic", "-no-reboot"}
	cmd := exec.Command("qemu-system-x86_64", append(base, args...)...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	c := &console{t: t, cmd: cmd, notify: make(chan struct{}, 1), eof: make(chan struct{}), done: make(chan struct{})}
	c.start = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("qemu: %v", err)
	}
	go func() {
		defer close(c.eof)
		r := bufio.NewReader(pr)
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			c.mu.Lock()
			c.out.Write(buf[:n])
			c.mu.Unlock()
			select {
			case c.notify <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		c.err = cmd.Wait()
		pw.Close()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.done
		if t.Failed() {
			t.Logf("console:\n%s", c.tail(6000))
		}
	})
	return c
}

// Expect waits for s in the output after what earlier calls consumed and
// returns the time since the VM started.
func (c *console) Expect(s string, timeout time.Duration) time.Duration {
	c.t.Helper()
	// timeout is how long the guest may print nothing (vm.SlowFactor).
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	limit := time.NewTimer(vm.SlowFactor * timeout)
	defer limit.Stop()
	ended := false
	for {
		c.mu.Lock()
		i := bytes.Index(c.out.Bytes()[c.seen:], []byte(s))
		if i >= 0 {
			c.seen += i + len(s)
		}
		c.mu.Unlock()
		if i >= 0 {
			return time.Since(c.start)
		}
		if ended {
			<-c.done
			c.t.Fatalf("VM ended (%v) before printing %q", c.err, s)
		}
		select {
		case <-c.notify:
			if !deadline.Stop() {
				<-deadline.C
			}
			deadline.Reset(timeout)
		case <-c.eof:
			ended = true // look once more at everything it printed
		case <-deadline.C:
			c.t.Fatalf("no %q on the console: the guest printed nothing for %s", s, timeout)
		case <-limit.C:
			c.t.Fatalf("no %q on the console after %s", s, vm.SlowFactor*timeout)
		}
	}
}

// Kill stops the VM and waits for it to exit.
func (c *console) Kill() {
	_ = c.cmd.Process.Kill()
	<-c.done
}

// Wait waits for QEMU to exit.
func (c *console) Wait(timeout time.Duration) time.Duration {
	c.t.Helper()
	select {
	case <-c.done:
		return time.Since(c.start)
	case <-time.After(vm.SlowFactor * timeout):
		c.t.Fatalf("VM still running after %s", vm.SlowFactor*timeout)
		return 0
	}
}

func (c *console) tail(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.out.Bytes()
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// testKernel fetches (once, cached) the kernel the VM tests boot, with
// scripts/fetch-kernel.sh, and returns its bzImage and modules folder.
func testKernel(t *testing.T) (vmlinuz, modules string) {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	cache := os.Getenv("LIFEBOAT_CACHE")
	if cache == "" {
		cache = filepath.Join(root, ".cache")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "fetch-kernel.sh"), filepath.Join(cache, "kernel"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("fetch-kernel.sh: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "VMLINUZ":
			vmlinuz = v
		case "MODULES":
			modules = v
		}
	}
	if vmlinuz == "" || modules == "" {
		t.Fatalf("fetch-kernel.sh printed no VMLINUZ/MODULES: %q", out)
	}
	return vmlinuz, modules
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

func fmtDur(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }
