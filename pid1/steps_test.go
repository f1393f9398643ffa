package pid1

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeSystem records the calls and fails the ones named in fail.
type fakeSystem struct {
	calls []string
	fail  map[string]error
}

func (f *fakeSystem) do(call string) error {
	f.calls = append(f.calls, call)
	return f.fail[call]
}

func (f *fakeSystem) MkdirAll(path string, perm fs.FileMode) error {
	return f.do(fmt.Sprintf("mkdir %s %#o", path, perm))
}

func (f *fakeSystem) Mount(source, target, fstype string, flags uintptr, data string) error {
	return f.do(fmt.Sprintf("mount %s %s %s %#x %q", source, target, fstype, flags, data))
}

func (f *fakeSystem) Symlink(oldname, newname string) error {
	return f.do(fmt.Sprintf("symlink %s %s", oldname, newname))
}

func TestRunSteps(t *testing.T) {
	steps := []Step{
		Dir{Path: "/a", Mode: 0o755},
		Mount{Source: "proc", Target: "/proc", FSType: "proc", Flags: 0x6},
		Mount{Source: "debugfs", Target: "/sys/kernel/debug", FSType: "debugfs", Optional: true},
		Mount{Source: "tmpfs", Target: "/tmp", FSType: "tmpfs", Data: "mode=1777"},
		Symlink{Target: "/proc/self/fd", Path: "/dev/fd"},
		Symlink{Target: "/x", Path: "/y"},
	}
	errProc := errors.New("no proc")
	errDebug := errors.New("no debugfs")
	sys := &fakeSystem{fail: map[string]error{
		`mount proc /proc proc 0x6 ""`:                   errProc,
		`mount debugfs /sys/kernel/debug debugfs 0x0 ""`: errDebug,
		`symlink /proc/self/fd /dev/fd`:                  fs.ErrExist, // already there: fine
	}}
	var logged []string
	log := LogFunc(func(format string, args ...any) { logged = append(logged, fmt.Sprintf(format, args...)) })

	err := RunSteps(sys, steps, log)

	if !errors.Is(err, errProc) {
		t.Errorf("RunSteps = %v, want it to wrap %v", err, errProc)
	}
	if errors.Is(err, errDebug) {
		t.Errorf("RunSteps = %v, want the optional debugfs failure left out", err)
	}
	if !strings.Contains(fmt.Sprint(err), "mount proc on /proc type proc") {
		t.Errorf("RunSteps = %v, want the failing step named", err)
	}
	wantCalls := []string{
		"mkdir /a 0755",
		"mkdir /proc 0755",
		`mount proc /proc proc 0x6 ""`,
		"mkdir /sys/kernel/debug 0755",
		`mount debugfs /sys/kernel/debug debugfs 0x0 ""`,
		"mkdir /tmp 0755",
		`mount tmpfs /tmp tmpfs 0x0 "mode=1777"`,
		"symlink /proc/self/fd /dev/fd",
		"symlink /x /y",
	}
	if diff := cmp.Diff(wantCalls, sys.calls); diff != "" {
		t.Errorf("RunSteps calls mismatch (-want +got):\n%s", diff)
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "no debugfs") {
		t.Errorf("RunSteps logged %q, want one line about debugfs", logged)
	}
}

func TestRunStepsAllGood(t *testing.T) {
	sys := &fakeSystem{}
	if err := RunSteps(sys, []Step{Dir{Path: "/b", Mode: 0o700}, Mount{Source: "x", Target: "/x", FSType: "x"}}, LogFunc(t.Logf)); err != nil {
		t.Errorf("RunSteps = %v, want nil", err)
	}
}

func TestStepStrings(t *testing.T) {
	for _, tt := range []struct {
		s    Step
		want string
	}{
		{Dir{Path: "/run", Mode: 0o755}, "dir /run 0755"},
		{Mount{Source: "tmpfs", Target: "/tmp", FSType: "tmpfs", Data: "mode=1777"}, "mount tmpfs on /tmp type tmpfs (mode=1777)"},
		{Mount{Source: "proc", Target: "/proc", FSType: "proc"}, "mount proc on /proc type proc"},
		{Symlink{Target: "/proc/self/fd", Path: "/dev/fd"}, "symlink /dev/fd -> /proc/self/fd"},
	} {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.s, got, tt.want)
		}
	}
}
