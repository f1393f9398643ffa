package pid1

import "testing"

// TestEarlyMounts checks the table's order: what a step needs comes first.
func TestEarlyMounts(t *testing.T) {
	sys := &fakeSystem{}
	if err := RunSteps(sys, EarlyMounts, LogFunc(t.Logf)); err != nil {
		t.Fatalf("RunSteps(EarlyMounts) = %v", err)
	}
	pos := map[string]int{}
	for i, s := range EarlyMounts {
		switch s := s.(type) {
		case Mount:
			pos[s.Target] = i
			if s.Optional != (s.FSType == "debugfs") {
				t.Errorf("%v: Optional = %v, want only debugfs optional", s, s.Optional)
			}
		case Symlink:
			if s.Path == "/dev/fd" && (pos["/proc"] > i || pos["/dev"] > i) {
				t.Errorf("%v comes before /proc or /dev is mounted", s)
			}
		}
	}
	for _, m := range []string{"/proc", "/sys", "/dev", "/dev/pts", "/run", "/tmp", "/sys/kernel/debug"} {
		if _, ok := pos[m]; !ok {
			t.Errorf("EarlyMounts has no mount on %s", m)
		}
	}
	if pos["/dev/pts"] < pos["/dev"] {
		t.Errorf("EarlyMounts mounts /dev/pts before /dev")
	}
	if pos["/sys/kernel/debug"] < pos["/sys"] {
		t.Errorf("EarlyMounts mounts debugfs before /sys")
	}
}
