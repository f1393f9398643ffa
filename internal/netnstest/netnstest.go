// Package netnstest makes network namespaces joined by veth pairs for the
// tests of code that talks to a network: the traffic stays inside
// namespaces the test made, and they are deleted when it ends.
//
// It needs root and iproute2's ip; CI has both.
package netnstest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Need skips t unless it can make namespaces: root, and ip from
// iproute2. CI runs as root with iproute2, so there it never skips.
func Need(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and veth pairs")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip from iproute2 (Debian package iproute2)")
	}
}

// Run runs a command and fails t if it fails.
func Run(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// New makes a namespace named prefix-PID with its loopback up, deleted
// when t ends, and returns its name.
func New(t testing.TB, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d", prefix, os.Getpid())
	Run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	Run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// Link joins namespace a's interface ifA and namespace b's ifB with a veth
// pair, gives them the addresses (with prefix lengths: "198.18.99.1/24")
// and brings them up. It returns once both ends are operational: until
// the kernel's link watcher has activated an interface (it runs deferred,
// up to a second later), what is sent through it is dropped.
func Link(t testing.TB, a, ifA, addrA, b, ifB, addrB string) {
	t.Helper()
	Run(t, "ip", "-n", a, "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", b)
	ends := []struct{ ns, dev, addr string }{{a, ifA, addrA}, {b, ifB, addrB}}
	for _, e := range ends {
		Run(t, "ip", "-n", e.ns, "addr", "add", e.addr, "dev", e.dev)
		Run(t, "ip", "-n", e.ns, "link", "set", e.dev, "up")
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, e := range ends {
		for {
			out, err := exec.Command("ip", "-n", e.ns, "-o", "link", "show", e.dev).CombinedOutput()
			if err == nil && strings.Contains(string(out), " state UP ") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s in %s is not up: %s", e.dev, e.ns, out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// In runs f on a thread switched into the namespace. Sockets f makes stay
// in that namespace after the thread switches back; so does what they
// reach. Code that makes sockets later, on other threads, is in the
// test's own namespace.
func In(t testing.TB, ns string, f func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is not unlocked: if switching back failed it must
		// die with this goroutine rather than serve others.
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
