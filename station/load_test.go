package station

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeboat-updater/lifeboat/station/client"
	"github.com/lifeboat-updater/lifeboat/station/stationtest"
	"github.com/lifeboat-updater/lifeboat/station/store/pgtest"
)

// The load test's size. The default keeps it inside the ordinary test
// run; docs/BENCHMARKS.md has the 1000-unit run:
//
//	go test ./station -run TestLoad -count=1 -v -load.units=1000
var (
	loadUnits = flag.Int("load.units", 100, "TestLoad: units at once")
	loadDB    = flag.String("load.db", "", `TestLoad: a PostgreSQL connection string instead of SQLite ("pgtest": a server the test starts)`)
)

// timing is an http.RoundTripper that records each answer's time.
type timing struct {
	rt      http.RoundTripper
	mu      sync.Mutex
	took    []time.Duration
	slowest map[string]time.Duration // by call
}

func (t *timing) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.rt.RoundTrip(r)
	d := time.Since(start)
	call := r.URL.Path
	if i := strings.LastIndex(call, "/"); strings.HasPrefix(call, "/api/v1/runs/") {
		call = call[i+1:]
	}
	t.mu.Lock()
	t.took = append(t.took, d)
	t.slowest[call] = max(t.slowest[call], d)
	t.mu.Unlock()
	return resp, err
}

// TestLoad runs -load.units simulated units against a station process on
// loopback, all at once: each announces, gets its identity (with a
// certificate), sends 10 batches of progress events, gets its signed unit
// data and reports. It reports requests per second, the slowest answer
// and the station's peak memory; it fails if any unit fails or any
// identity is given twice.
func TestLoad(t *testing.T) {
	n := *loadUnits
	f := stationtest.New(t)
	f.Bundle(t, "os.lfb", "1.0", []string{"qemu-x86_64"}, stationtest.UnitFields())
	addr := freePort(t)
	dbURL := *loadDB
	if dbURL == "pgtest" {
		dbURL = pgtest.Start(t).NewDB(t)
	}
	cfg := f.Config(t, stationtest.Options{Bundles: []string{"os.lfb"}, Listen: addr, Serials: "1-999999", Database: dbURL})
	url := "http://" + addr
	p := startProcess(t, cfg, url)
	tm := &timing{slowest: map[string]time.Duration{}, rt: &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: 0, IdleConnTimeout: time.Minute}}
	c := client.New(url, &http.Client{Transport: tm, Timeout: 5 * time.Minute})
	ctx := context.Background()
	var failed atomic.Int32
	serials := make([]string, n)
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			u := &stationtest.Unit{Board: "qemu-x86_64", Hardware: board(10000 + i), Steps: 2, Progress: 5}
			r, err := u.Run(ctx, c)
			if err != nil || r.Reply.Result != "pass" {
				failed.Add(1)
				t.Errorf("unit %d: %v", i, err)
				return
			}
			serials[i] = r.Identity.Serial
		}(i)
	}
	wg.Wait()
	wall := time.Since(start)
	hwm := peakRSS(t, p.cmd.Process.Pid)
	p.kill(t)
	seen := map[string]bool{}
	for _, s := range serials {
		if s != "" && seen[s] {
			t.Errorf("serial %s given twice", s)
		}
		seen[s] = true
	}
	took := slices.Clone(tm.took)
	slices.Sort(took)
	q := func(p float64) time.Duration { return took[int(p*float64(len(took)-1))] }
	db := "SQLite"
	if *loadDB != "" {
		db = "PostgreSQL"
	}
	report := fmt.Sprintf("%d units at once (%s), %d requests in %.2f s: %.0f requests/s, %.1f units/s; answer p50 %v, p99 %v, slowest %v; station peak RSS %.1f MiB",
		n, db, len(took), wall.Seconds(), float64(len(took))/wall.Seconds(), float64(n)/wall.Seconds(),
		q(0.5).Round(time.Millisecond/10), q(0.99).Round(time.Millisecond/10), took[len(took)-1].Round(time.Millisecond/10), float64(hwm)/(1<<20))
	var calls []string
	for k, v := range tm.slowest {
		calls = append(calls, fmt.Sprintf("%s %v", k, v.Round(time.Millisecond)))
	}
	slices.Sort(calls)
	report += "; slowest by call: " + strings.Join(calls, ", ")
	t.Log(report)
	if dir := os.Getenv("LIFEBOAT_ARTIFACTS"); dir != "" {
		os.WriteFile(filepath.Join(dir, "station-load.txt"), []byte(report+"\n"), 0o644)
	}
}

// peakRSS reads a process's peak resident memory (VmHWM).
func peakRSS(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}
