// Package storetest is the suite every store.Store implementation must
// pass. A database's test calls Run with a function that makes a fresh,
// empty database and returns an opener for it: the suite opens it several
// times, as several stations would.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lifeboat-updater/lifeboat/station/identity"
	"github.com/lifeboat-updater/lifeboat/station/protocol"
	"github.com/lifeboat-updater/lifeboat/station/store"
	"github.com/lifeboat-updater/lifeboat/unitdata"
)

// Fresh makes an empty database and returns a function that opens a new
// handle to it.
type Fresh func(t *testing.T) (open func() store.Store)

// Run runs the suite.
func Run(t *testing.T, fresh Fresh) {
	for _, tc := range []struct {
		name string
		f    func(*testing.T, func() store.Store)
	}{
		{"AnnounceResumes", testAnnounceResumes},
		{"AllocateOnce", testAllocateOnce},
		{"SerialRangeExhausted", testSerialExhausted},
		{"MACPoolExhausted", testMACExhausted},
		{"ScannedSerials", testScanned},
		{"EventsAndFinishOnce", testEventsFinish},
		{"Credentials", testCredentials},
		{"Summary", testSummary},
		{"ConcurrentAllocators", testConcurrent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			open := fresh(t)
			tc.f(t, open)
		})
	}
}

func openT(t *testing.T, open func() store.Store) store.Store {
	s := open()
	t.Cleanup(func() { s.Close() })
	return s
}

var ctx = context.Background()

func hw(i int) unitdata.Hardware {
	return unitdata.Hardware{EMMCCID: fmt.Sprintf("cid%04d", i), MAC: fmt.Sprintf("52:54:00:00:00:%02x", i%256)}
}

func announce(t *testing.T, s store.Store, i int) store.Run {
	t.Helper()
	r, _, err := s.Announce(ctx, store.NewRun{Station: "st1", Board: "qemu-x86_64", Revision: "1", Hardware: hw(i),
		Bundle: "os.lfb", Product: "demo", Version: "1.0", Time: time.Now()})
	if err != nil {
		t.Fatalf("Announce(unit %d) = %v", i, err)
	}
	return r
}

func pools(serials, macUnits int) store.Pools {
	return store.Pools{
		Serials: &identity.SerialRange{Format: "LB-%06d", First: 100, Last: uint64(100 + serials - 1)},
		MACs:    &identity.MACPool{First: 0x020000001000, Last: 0x020000001000 + uint64(2*macUnits) - 1, PerUnit: 2},
	}
}

func testAnnounceResumes(t *testing.T, open func() store.Store) {
	s := openT(t, open)
	r1, resumed, err := s.Announce(ctx, store.NewRun{Station: "st1", Board: "b", Hardware: hw(1), Bundle: "x", Time: time.Now()})
	if err != nil || resumed || r1.Attempt != 1 {
		t.Fatalf("first Announce = %+v, resumed %v, %v; want attempt 1, new", r1, resumed, err)
	}
	r2, resumed, err := s.Announce(ctx, store.NewRun{Station: "st2", Board: "b", Hardware: hw(1), Bundle: "x", Time: time.Now()})
	if err != nil || !resumed || r2.ID != r1.ID {
		t.Fatalf("second Announce = run %d, resumed %v, %v; want run %d resumed", r2.ID, resumed, err, r1.ID)
	}
	if _, _, err := s.Finish(ctx, r1.ID, store.Result{Pass: false, Reason: "read-back differs", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	r3, resumed, err := s.Announce(ctx, store.NewRun{Station: "st1", Board: "b", Hardware: hw(1), Bundle: "x", Time: time.Now()})
	if err != nil || resumed || r3.ID == r1.ID || r3.Attempt != 2 || r3.Unit != r1.Unit {
		t.Fatalf("Announce after a result = %+v, resumed %v, %v; want a new run, attempt 2, same unit", r3, resumed, err)
	}
	if _, _, err := s.Announce(ctx, store.NewRun{Board: "b"}); err == nil {
		t.Errorf("Announce without hardware ids succeeded")
	}
}

func testAllocateOnce(t *testing.T, open func() store.Store) {
	s := openT(t, open)
	p := pools(10, 10)
	r1, r2 := announce(t, s, 1), announce(t, s, 2)
	id1, err := s.Allocate(ctx, r1.Unit, p)
	if err != nil {
		t.Fatal(err)
	}
	want := identity.Identity{Serial: "LB-000100", MACs: []string{"02:00:00:00:10:00", "02:00:00:00:10:01"}}
	if diff := cmp.Diff(want, id1); diff != "" {
		t.Errorf("Allocate(unit 1) mismatch (-want +got):\n%s", diff)
	}
	again, err := s.Allocate(ctx, r1.Unit, p)
	if err != nil || !cmp.Equal(again, id1) {
		t.Errorf("Allocate(unit 1) again = %+v, %v; want the same identity %+v", again, err, id1)
	}
	// Another handle (another station, or the station after a restart)
	// sees the committed allocation.
	s2 := openT(t, open)
	id2, err := s2.Allocate(ctx, r2.Unit, p)
	if err != nil {
		t.Fatal(err)
	}
	want2 := identity.Identity{Serial: "LB-000101", MACs: []string{"02:00:00:00:10:02", "02:00:00:00:10:03"}}
	if diff := cmp.Diff(want2, id2); diff != "" {
		t.Errorf("Allocate(unit 2) mismatch (-want +got):\n%s", diff)
	}
	if _, err := s.Allocate(ctx, 9999, p); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Allocate(unknown unit) = %v, want ErrNotFound", err)
	}
}

func testSerialExhausted(t *testing.T, open func() store.Store) {
	s := openT(t, open)
	p := pools(2, 10)
	for i := 1; i <= 2; i++ {
		if _, err := s.Allocate(ctx, announce(t, s, i).Unit, p); err != nil {
			t.Fatal(err)
		}
	}
	r := announce(t, s, 3)
	_, err := s.Allocate(ctx, r.Unit, p)
	if !errors.Is(err, store.ErrExhausted) {
		t.Fatalf("Allocate past the serial range = %v, want ErrExhausted", err)
	}
	u, err := s.Unit(ctx, r.Unit)
	if err != nil {
		t.Fatal(err)
	}
	if u.Identity.Serial != "" || len(u.Identity.MACs) != 0 {
		t.Errorf("after exhaustion the unit holds %+v, want nothing", u.Identity)
	}
	// Nothing was taken from the MAC pool either: a wider serial range
	// continues with the next MACs.
	p.Serials.Last++
	id, err := s.Allocate(ctx, r.Unit, p)
	if err != nil {
		t.Fatal(err)
	}
	if id.Serial != "LB-000102" || id.MACs[0] != "02:00:00:00:10:04" {
		t.Errorf("after widening, Allocate = %+v, want LB-000102 with 02:00:00:00:10:04", id)
	}
}

func testMACExhausted(t *testing.T, open func() store.Store) {
	s := openT(t, open)
	p := pools(10, 1)
	if _, err := s.Allocate(ctx, announce(t, s, 1).Unit, p); err != nil {
		t.Fatal(err)
	}
	r := announce(t, s, 2)
	if _, err := s.Allocate(ctx, r.Unit, p); !errors.Is(err, store.ErrExhausted) {
		t.Fatalf("Allocate past the MAC pool = %v, want ErrExhausted", err)
	}
	u, _ := s.Unit(ctx, r.Unit)
	if u.Identity.Serial != "" {
		t.Errorf("a MAC pool that ran out still gave serial %s", u.Identity.Serial)
	}
}

func testScanned(t *testing.T, open func() store.Store) {
	s := openT(t, open)
	p := store.Pools{Scanned: true}
	r1, r2, r3 := announce(t, s, 1), announce(t, s, 2), announce(t, s, 3)
	if _, err := s.Allocate(ctx, r1.Unit, p); !errors.Is(err, store.ErrExhausted) {
		t.Fatalf("Allocate with nothing scanned = %v, want ErrExhausted", err)
	}
	if err := s.RegisterSerial(ctx, "QUEUED-1", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterSerial(ctx, "FOR-UNIT-2", hw(2).Key()); err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterSerial(ctx, "QUEUED-1", ""); !errors.Is(err, store.ErrDuplicate) {
		t.Errorf("RegisterSerial twice = %v, want ErrDuplicate", err)
	}
	if err := s.RegisterSerial(ctx, "bad serial/..", ""); err == nil {
		t.Errorf("RegisterSerial(bad characters) succeeded")
	}
	id2, err := s.Allocate(ctx, r2.Unit, p)
	if err != nil || id2.Serial != "FOR-UNIT-2" {
		t.Errorf("Allocate(unit 2) = %+v, %v; want its own scanned serial FOR-UNIT-2", id2, err)
	}
	id1, err := s.Allocate(ctx, r1.Unit, p)
	if err != nil || id1.Serial != "QUEUED-1" {
		t.Errorf("Allocate(unit 1) = %+v, %v; want the queued QUEUED-1", id1, err)
	}
	if _, err := s.Allocate(ctx, r3.Unit, p); !errors.Is(err, store.ErrExhausted) {
		t.Errorf("Allocate(unit 3) with the queue empty = %v, want ErrExhausted", err)
	}
	if err := s.RegisterSerial(ctx, "QUEUED-1", ""); !errors.Is(err, store.ErrDuplicate) {
		t.Errorf("RegisterSerial of a serial a unit has = %v, want ErrDuplicate", err)
	}
	// A range skips a serial that was scanned for a unit.
	if err := s.RegisterSerial(ctx, "LB-000100", ""); err != nil {
		t.Fatal(err)
	}
	r4 := announce(t, s, 4)
	pr := pools(5, 5)
	pr.Scanned = true
	if id, err := s.Allocate(ctx, r4.Unit, pr); err != nil || id.Serial != "LB-000100" {
		t.Fatalf("Allocate(unit 4) = %+v, %v; want scanned LB-000100", id, err)
	}
	if id, err := s.Allocate(ctx, r3.Unit, pr); err != nil || id.Serial != "LB-000101" {
		t.Errorf("Allocate(unit 3) from the range = %+v, %v; want LB-000101 (LB-000100 is taken)", id, err)
	}
}

func ev(seq int, kind string) store.Event {
	return store.Event{Seq: seq, Kind: kind, Time: time.Unix(1700000000, int64(seq)), Body: []byte(fmt.Sprintf(`{"event":%q,"n":%d}`, kind, seq))}
}

func testEventsFinish(t *testing.T, open func() store.Store) {
	s := openT(t, open)
	r := announce(t, s, 1)
	if err := s.AddEvents(ctx, r.ID, []store.Event{ev(0, "start"), ev(1, "plan")}); err != nil {
		t.Fatal(err)
	}
	// Sent again after a lost reply, plus one more: kept once.
	if err := s.AddEvents(ctx, r.ID, []store.Event{ev(1, "plan"), ev(2, "step-start")}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddEvents(ctx, 4242, []store.Event{ev(0, "start")}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("AddEvents(unknown run) = %v, want ErrNotFound", err)
	}
	steps := []protocol.StepResult{{Step: 1, Name: "image rootfs", Result: "ok", Seconds: 1.5}}
	res := store.Result{Pass: true, ReadBack: protocol.ReadBackPass, Steps: steps, Seconds: 3, Time: time.Now(),
		Events: []store.Event{ev(2, "step-start"), ev(3, "done")}}
	got, dup, err := s.Finish(ctx, r.ID, res)
	if err != nil || dup {
		t.Fatalf("Finish = %v, dup %v", err, dup)
	}
	if got.Result != store.ResultPass || got.Finished.IsZero() || !cmp.Equal(got.Steps, steps) {
		t.Errorf("Finish recorded %+v", got)
	}
	// Reported twice (the reply was lost): the first report stands.
	res2 := store.Result{Pass: false, Reason: "again", Time: time.Now(), Events: []store.Event{ev(4, "error")}}
	again, dup, err := s.Finish(ctx, r.ID, res2)
	if err != nil || !dup || again.Result != store.ResultPass || again.Reason != "" {
		t.Errorf("second Finish = %+v, dup %v, %v; want the first result, dup", again, dup, err)
	}
	evs, err := s.Events(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range evs {
		kinds = append(kinds, fmt.Sprintf("%d:%s", e.Seq, e.Kind))
	}
	if diff := cmp.Diff([]string{"0:start", "1:plan", "2:step-start", "3:done"}, kinds); diff != "" {
		t.Errorf("event log mismatch (-want +got):\n%s", diff)
	}
	if _, _, err := s.Finish(ctx, 4242, res); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Finish(unknown run) = %v, want ErrNotFound", err)
	}
}

func testCredentials(t *testing.T, open func() store.Store) {
	s := openT(t, open)
	r := announce(t, s, 1)
	if _, err := s.Allocate(ctx, r.Unit, pools(3, 3)); err != nil {
		t.Fatal(err)
	}
	id, err := s.SetCredentials(ctx, r.Unit, "CERT1", "KEY1")
	if err != nil || id.Certificate != "CERT1" || id.PrivateKey != "KEY1" || id.Serial != "LB-000100" {
		t.Fatalf("SetCredentials = %+v, %v", id, err)
	}
	id, err = s.SetCredentials(ctx, r.Unit, "CERT2", "KEY2")
	if err != nil || id.Certificate != "CERT1" {
		t.Errorf("second SetCredentials = %+v, %v; want the first kept", id, err)
	}
}

func testSummary(t *testing.T, open func() store.Store) {
	s := openT(t, open)
	now := time.Now()
	for i := 1; i <= 4; i++ {
		r := announce(t, s, i)
		if i <= 3 {
			if _, _, err := s.Finish(ctx, r.ID, store.Result{Pass: i != 2, Time: now}); err != nil {
				t.Fatal(err)
			}
		}
	}
	sum, err := s.Summary(ctx, now.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if sum.InProgress != 1 || sum.Passed != 2 || sum.Failed != 1 || sum.FinishedLastHour != 3 {
		t.Errorf("Summary = %+v, want 1 in progress, 2 passed, 1 failed, 3 in the last hour", sum)
	}
	if y := sum.Yield(); y < 0.66 || y > 0.67 {
		t.Errorf("Yield() = %v, want 2/3", y)
	}
	runs, err := s.Runs(ctx, 0)
	if err != nil || len(runs) != 4 || runs[0].ID < runs[3].ID {
		t.Errorf("Runs() = %d runs, %v; want 4, newest first", len(runs), err)
	}
}

// testConcurrent runs several stores (stations) allocating at once for
// distinct units; every unit gets one identity, no serial or MAC twice, and
// the pool runs out exactly at its size.
func testConcurrent(t *testing.T, open func() store.Store) {
	const stations, units = 4, 40
	p := pools(units-4, units) // the serial range runs out first
	var stores []store.Store
	for i := 0; i < stations; i++ {
		stores = append(stores, openT(t, open))
	}
	var mu sync.Mutex
	serials, macs := map[string]int{}, map[string]int{}
	exhausted := 0
	var wg sync.WaitGroup
	for i := 0; i < units; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s := stores[i%stations]
			r, _, err := s.Announce(ctx, store.NewRun{Station: fmt.Sprint(i % stations), Board: "b", Hardware: hw(1000 + i), Time: time.Now()})
			if err != nil {
				t.Errorf("Announce: %v", err)
				return
			}
			// Each unit asks twice, from two stations, as a retried
			// board would.
			id, err := s.Allocate(ctx, r.Unit, p)
			id2, err2 := stores[(i+1)%stations].Allocate(ctx, r.Unit, p)
			mu.Lock()
			defer mu.Unlock()
			if errors.Is(err, store.ErrExhausted) && errors.Is(err2, store.ErrExhausted) {
				exhausted++
				return
			}
			if err != nil || err2 != nil {
				t.Errorf("Allocate(unit %d) = %v, %v", i, err, err2)
				return
			}
			if !cmp.Equal(id, id2) {
				t.Errorf("unit %d got %+v, then %+v", i, id, id2)
			}
			serials[id.Serial]++
			for _, m := range id.MACs {
				macs[m]++
			}
		}(i)
	}
	wg.Wait()
	if len(serials) != units-4 || exhausted != 4 {
		t.Errorf("%d serials given, %d units refused; want %d and 4", len(serials), exhausted, units-4)
	}
	for k, n := range serials {
		if n != 1 {
			t.Errorf("serial %s given %d times", k, n)
		}
	}
	for k, n := range macs {
		if n != 1 {
			t.Errorf("MAC %s given %d times", k, n)
		}
	}
	if len(macs) != 2*(units-4) {
		t.Errorf("%d MACs given, want %d", len(macs), 2*(units-4))
	}
}
