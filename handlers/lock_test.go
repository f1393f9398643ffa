package handlers

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestLockAll(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("flock is Linux's here")
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.WriteFile(a, nil, 0o644)
	os.WriteFile(b, nil, 0o644)
	l, err := LockAll([]string{b, a, a, "", filepath.Join(dir, "missing")}, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LockAll([]string{a}, false); !errors.Is(err, ErrBusy) {
		t.Errorf("LockAll(a, shared) while held = %v, want ErrBusy", err)
	}
	// Another process (flock(1)) sees it held too.
	if _, err := exec.LookPath("flock"); err == nil {
		out, err := exec.Command("flock", "-n", b, "true").CombinedOutput()
		if err == nil {
			t.Errorf("flock -n %s succeeded while Lifeboat holds it: %s", b, out)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	r1, err := LockAll([]string{a, b}, false)
	if err != nil {
		t.Fatalf("LockAll(shared) after Close = %v", err)
	}
	r2, err := LockAll([]string{a}, false)
	if err != nil {
		t.Errorf("two shared locks = %v, want both", err)
	}
	if _, err := LockAll([]string{a}, true); err == nil || !strings.Contains(err.Error(), a) {
		t.Errorf("LockAll(exclusive) over shared ones = %v, want ErrBusy naming %s", err, a)
	}
	r1.Close()
	r2.Close()
	l.Close() // twice is fine
}
