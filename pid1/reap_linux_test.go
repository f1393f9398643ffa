package pid1

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestReapOrphans makes the test process a child subreaper, as PID 1 is:
// an orphan left behind by a shell becomes its child, and the reaper must
// collect it, while commands run through Env.Exec keep their own status.
func TestReapOrphans(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Skipf("PR_SET_CHILD_SUBREAPER: %v", err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)

	mu := new(sync.RWMutex)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { reapOrphans(ctx, mu); close(done) }()
	defer func() { cancel(); <-done }()
	env := &Env{execMu: mu}

	var out bytes.Buffer
	cmd := exec.Command("sh", "-c", "sleep 0.3 & echo $!")
	cmd.Stdout = &out
	if err := env.Exec(cmd); err != nil {
		t.Fatalf("Exec(sh) = %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatalf("orphan pid %q: %v", out.String(), err)
	}
	// Meanwhile the reaper must not take the status of Exec's commands.
	for range 20 {
		if err := env.Exec(exec.Command("true")); err != nil {
			t.Fatalf("Exec(true) while reaping = %v", err)
		}
	}
	// A reaped orphan leaves /proc; an unreaped one stays there a zombie.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := os.Stat("/proc/" + strconv.Itoa(pid))
		if errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			stat, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
			t.Fatalf("orphan %d not reaped after 10s: %s", pid, stat)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
