// Package netnstest makes private networks for tests: network namespaces
// joined by veth pairs, deleted when the test ends. Traffic in them never
// leaves the machine. Addresses come from 198.18.0.0/15, the block
// reserved for benchmarking, and exist only inside these namespaces.
package netnstest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

var seq atomic.Int64

// Cmd runs a command and fails the test if it fails.
func Cmd(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// NS makes a network namespace with its loopback up; it is deleted when
// the test ends. It needs root and iproute2; without them the test is
// skipped with the reason (CI runs as root with iproute2).
func NS(t testing.TB, prefix string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("ip not found: Debian package iproute2 (scripts/install-deps.sh installs it)")
	}
	name := fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), seq.Add(1))
	Cmd(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	Cmd(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// Veth joins namespaces a and b with a veth pair: interface an in a
// (given address addrA, a prefix such as "198.18.91.1/24", or none when
// empty) and bn in b (addrB likewise). Both ends are up.
func Veth(t testing.TB, a, an, addrA, b, bn, addrB string) {
	t.Helper()
	Cmd(t, "ip", "-n", a, "link", "add", an, "type", "veth", "peer", "name", bn, "netns", b)
	for _, e := range []struct{ ns, dev, addr string }{{a, an, addrA}, {b, bn, addrB}} {
		if e.addr != "" {
			Cmd(t, "ip", "-n", e.ns, "addr", "add", e.addr, "dev", e.dev)
		}
		Cmd(t, "ip", "-n", e.ns, "link", "set", e.dev, "up")
	}
}

// In runs f on an OS thread switched into namespace ns. Sockets that f
// makes stay in ns after it returns, whichever thread then uses them.
func In(t testing.TB, ns string, f func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread on failure: a thread left in another
		// namespace must die with this goroutine, not serve others.
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer self.Close()
		target, err := os.Open(filepath.Join("/var/run/netns", ns))
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		ferr := f()
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	if err := <-errc; err != nil {
		t.Fatalf("in namespace %s: %v", ns, err)
	}
}

// Exec returns a command that runs in namespace ns.
func Exec(ns string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
}
