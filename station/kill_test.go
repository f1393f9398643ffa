package station

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lifeboat-updater/lifeboat/station/client"
	"github.com/lifeboat-updater/lifeboat/station/stationtest"
	"github.com/lifeboat-updater/lifeboat/station/store"
)

// process is a station running as its own process (this test binary in
// station mode), so that it can be killed for real.
type process struct {
	cmd  *exec.Cmd
	done chan error
	log  string
}

func startProcess(t *testing.T, cfg, url string) *process {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &process{done: make(chan error, 1), log: filepath.Join(t.TempDir(), "station.log")}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(exe, "-test.run=^$")
	p.cmd.Env = append(os.Environ(), childEnv+"="+cfg)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait(); logf.Close() }()
	t.Cleanup(func() { p.kill(t) })
	// Ready when the page answers.
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url + "/line.json")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case err := <-p.done:
			b, _ := os.ReadFile(p.log)
			t.Fatalf("station exited: %v\n%s", err, b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("station not ready after 60 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends SIGKILL: no shutdown, no flush, as when the line PC loses
// power or the process is killed.
func (p *process) kill(t *testing.T) {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.done <- nil // a second kill returns at once
	if b, err := os.ReadFile(p.log); err == nil {
		t.Logf("station log:\n%s", b)
	}
}

// TestKillStation kills a real station process (SIGKILL) in the middle of
// a line and starts it again: units in flight retry and finish, a board
// that rebooted gets its run and identity back, no identity is given
// twice, and no unit or event is lost.
func TestKillStation(t *testing.T) {
	f := stationtest.New(t)
	f.Bundle(t, "os.lfb", "1.0", []string{"qemu-x86_64"}, stationtest.UnitFields())
	addr := freePort(t)
	cfg := f.Config(t, stationtest.Options{Bundles: []string{"os.lfb"}, Listen: addr})
	url := "http://" + addr
	bt, stt := trust(t, f)
	c := client.New(url, &http.Client{Timeout: 5 * time.Second})
	ctx := stationtest.Context(t)

	p1 := startProcess(t, cfg, url)
	const n = 8
	var paused sync.WaitGroup
	release := make(chan struct{})
	paused.Add(n)
	results := make([]*stationtest.Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	// Units 0-3 stop before their unit data (identity given, events
	// sent), units 4-6 before their identity; unit 7 stops before its
	// identity and then "reboots": it gives up and runs again from the
	// start after the restart.
	rebootCtx, reboot := context.WithCancel(ctx)
	for i := 0; i < n; i++ {
		stage := "unit-data"
		if i >= 4 {
			stage = "identity"
		}
		u := &stationtest.Unit{Board: "qemu-x86_64", Revision: "1", Hardware: board(100 + i), BundleTrust: bt, Stations: stt}
		var once sync.Once
		u.Pause = func(s string) {
			if s == stage {
				once.Do(func() {
					paused.Done()
					<-release
				})
			}
		}
		uctx := ctx
		if i == 7 {
			uctx = rebootCtx
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i], errs[i] = u.Run(uctx, c)
		}(i)
	}
	paused.Wait()
	before, err := runsInDB(f)
	if err != nil {
		t.Fatal(err)
	}
	p1.kill(t)
	reboot()
	close(release)
	// The units now retry against a dead station for a moment.
	time.Sleep(300 * time.Millisecond)
	startProcess(t, cfg, url)
	// The rebooted board announces again.
	u7 := &stationtest.Unit{Board: "qemu-x86_64", Revision: "1", Hardware: board(107), BundleTrust: bt, Stations: stt}
	r7, err := u7.Run(ctx, c)
	if err != nil {
		t.Fatalf("rebooted unit: %v", err)
	}
	wg.Wait()
	results[7], errs[7] = r7, nil
	serials, macs := map[string]int{}, map[string]int{}
	for i, r := range results {
		if errs[i] != nil {
			t.Errorf("unit %d: %v", i, errs[i])
			continue
		}
		if r.Reply.Result != "pass" {
			t.Errorf("unit %d: %+v", i, r.Reply)
		}
		// The unit data (after the restart) names the identity the unit
		// was given (before it, for units 0-3).
		if r.Data.Serial != r.Identity.Serial || r.Plan.Env["bootenv"]["ethaddr"] != r.Identity.MACs[0] {
			t.Errorf("unit %d: identity %+v, unit data %s %v", i, r.Identity, r.Data.Serial, r.Plan.Env)
		}
		serials[r.Identity.Serial]++
		for _, m := range r.Identity.MACs {
			macs[m]++
		}
	}
	if len(serials) != n || len(macs) != 2*n {
		t.Errorf("%d serials and %d MACs for %d units: %v", len(serials), len(macs), n, serials)
	}
	if !r7.Announce.Resumed || r7.Announce.Attempt != 1 {
		t.Errorf("rebooted unit: %+v, want its open run resumed", r7.Announce)
	}
	after, err := runsInDB(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != n || len(after) != n {
		t.Errorf("runs in the database: %d before the kill, %d after; want %d and %d", len(before), len(after), n, n)
	}
	st, err := store.OpenSQLite(ctx, filepath.Join(f.Dir, "line.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i, r := range results {
		if r == nil {
			continue
		}
		run, err := st.Run(ctx, r.Announce.Run)
		if err != nil || run.Result != "pass" || run.Serial != r.Identity.Serial {
			t.Errorf("unit %d recorded as %+v, %v", i, run, err)
		}
		evs, _ := st.Events(ctx, run.ID)
		for k, e := range evs {
			if e.Seq != k {
				t.Errorf("unit %d: event %d has seq %d (lost or repeated)", i, k, e.Seq)
				break
			}
		}
		if len(evs) < r.Events {
			t.Errorf("unit %d: %d events recorded, logged %d", i, len(evs), r.Events)
		}
	}
}

func runsInDB(f *stationtest.Fixture) ([]store.Run, error) {
	st, err := store.OpenSQLite(context.Background(), filepath.Join(f.Dir, "line.db"))
	if err != nil {
		return nil, err
	}
	defer st.Close()
	runs, err := st.Runs(context.Background(), 0)
	if err != nil {
		return nil, fmt.Errorf("runs: %w", err)
	}
	return runs, nil
}
