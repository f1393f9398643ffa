package station

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-updater/lifeboat/station/client"
	"github.com/lifeboat-updater/lifeboat/station/stationtest"
	"github.com/lifeboat-updater/lifeboat/station/store/pgtest"
)

// TestStationsSharePostgres runs three stations on one PostgreSQL
// database (one line, several PCs) with units spread over them at once:
// every unit gets its own serial and MACs, and every station's page sees
// every unit.
func TestStationsSharePostgres(t *testing.T) {
	pg := pgtest.Start(t)
	db := pg.NewDB(t)
	f := stationtest.New(t)
	f.Bundle(t, "os.lfb", "1.0", []string{"qemu-x86_64"}, stationtest.UnitFields())
	var stations []*Station
	for _, name := range []string{"st-a", "st-b", "st-c"} {
		stations = append(stations, start(t, f.Config(t, stationtest.Options{Name: name, Bundles: []string{"os.lfb"}, Database: db, Serials: "1-30"})))
	}
	bt, stt := trust(t, f)
	const n = 33 // three more than the range: they must be refused, none given twice
	serials, macs := map[string]int{}, map[string]int{}
	exhausted := 0
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			st := stations[i%len(stations)]
			ctx, cancel := context.WithCancel(stationtest.Context(t))
			defer cancel()
			u := &stationtest.Unit{Board: "qemu-x86_64", Hardware: board(200 + i), BundleTrust: bt, Stations: stt, Steps: 1, Progress: 1,
				// A unit refused for exhaustion would wait; here it stops.
				Wait: func(err error, _ time.Duration) {
					if errors.Is(err, client.ErrExhausted) {
						cancel()
					}
				}}
			r, err := u.Run(ctx, client.New(st.URL(), nil))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if errors.Is(err, client.ErrExhausted) {
					exhausted++
					return
				}
				t.Errorf("unit %d at %s: %v", i, st.cfg.Name, err)
				return
			}
			serials[r.Identity.Serial]++
			for _, m := range r.Identity.MACs {
				macs[m]++
			}
			if r.Data.Serial != r.Identity.Serial {
				t.Errorf("unit %d: unit data for %s, identity %s", i, r.Data.Serial, r.Identity.Serial)
			}
		}(i)
	}
	wg.Wait()
	if len(serials) != 30 || len(macs) != 60 || exhausted != 3 {
		t.Errorf("%d serials, %d MACs, %d refused; want 30, 60, 3", len(serials), len(macs), exhausted)
	}
	for s, k := range serials {
		if k != 1 {
			t.Errorf("serial %s given %d times", s, k)
		}
	}
	for m, k := range macs {
		if k != 1 {
			t.Errorf("MAC %s given %d times", m, k)
		}
	}
	for _, st := range stations {
		runs, err := st.Store().Runs(stationtest.Context(t), 0)
		if err != nil || len(runs) != n {
			t.Errorf("station %s sees %d runs, %v; want %d", st.cfg.Name, len(runs), err, n)
		}
	}
}
