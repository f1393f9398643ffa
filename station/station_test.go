package station

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/station/client"
	"github.com/lifeboat-updater/lifeboat/station/config"
	"github.com/lifeboat-updater/lifeboat/station/stationtest"
	"github.com/lifeboat-updater/lifeboat/unitdata"
)

// childEnv makes this test binary a station process (for the tests that
// kill one): its value is the configuration file.
const childEnv = "LIFEBOAT_STATION_TEST_CHILD"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(childEnv); cfg != "" {
		os.Exit(Main(context.Background(), []string{"-config", cfg}, os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// start runs a station in this process on loopback.
func start(t *testing.T, cfgFile string) *Station {
	t.Helper()
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	st, err := Open(context.Background(), cfg, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve() = %v", err)
		}
		st.Close()
	})
	return st
}

func trust(t *testing.T, f *stationtest.Fixture) (bundles, stations *bundle.TrustStore) {
	var err error
	if bundles, err = bundle.LoadTrustStore(filepath.Join(f.Dir, "keys")); err != nil {
		t.Fatal(err)
	}
	if stations, err = unitdata.LoadTrustStore(f.StationKeys); err != nil {
		t.Fatal(err)
	}
	return bundles, stations
}

func board(i int) unitdata.Hardware {
	return unitdata.Hardware{EMMCCID: fmt.Sprintf("150100514536344702%014x", i), MAC: fmt.Sprintf("52:54:00:12:34:%02x", i)}
}

// TestLine provisions units at once through the real protocol and checks
// what each got, what it would write, and what the station recorded.
func TestLine(t *testing.T) {
	f := stationtest.New(t)
	f.Bundle(t, "os-1.0.lfb", "1.0", []string{"qemu-x86_64"}, stationtest.UnitFields())
	st := start(t, f.Config(t, stationtest.Options{Bundles: []string{"os-1.0.lfb"}}))
	bt, stt := trust(t, f)
	c := client.New(st.URL(), nil)
	const n = 6
	results := make([]*stationtest.Result, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			u := &stationtest.Unit{Board: "qemu-x86_64", Revision: "1", Hardware: board(i), BundleTrust: bt, Stations: stt}
			if i == 3 {
				u.Fail = "read-back of rootfs differs at chunk 2"
			}
			r, err := u.Run(stationtest.Context(t), c)
			if err != nil {
				t.Errorf("unit %d: %v", i, err)
				return
			}
			results[i] = r
		}(i)
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	serials, macs := map[string]bool{}, map[string]bool{}
	for i, r := range results {
		id := r.Identity
		if serials[id.Serial] || len(id.MACs) != 2 || macs[id.MACs[0]] || macs[id.MACs[1]] {
			t.Errorf("unit %d got %+v: a serial or MAC given twice", i, id)
		}
		serials[id.Serial] = true
		macs[id.MACs[0]], macs[id.MACs[1]] = true, true
		if !strings.Contains(id.Certificate, "BEGIN CERTIFICATE") || id.PrivateKey != "" {
			t.Errorf("unit %d identity: certificate %d bytes, private key %d bytes; want a certificate and no key", i, len(id.Certificate), len(id.PrivateKey))
		}
		// What the unit would write, from the signed unit data.
		p := r.Plan
		wantEnv := map[string]map[string]string{"bootenv": {"serial#": id.Serial, "ethaddr": id.MACs[0], "eth1addr": id.MACs[1]}}
		if diff := cmp.Diff(wantEnv, p.Env); diff != "" {
			t.Errorf("unit %d env mismatch (-want +got):\n%s", i, diff)
		}
		if len(p.Files) != 3 || string(p.Files[0].Data) != id.Serial || p.Files[1].Path != "factory/unit.crt" ||
			string(p.Files[1].Data) != id.Certificate || !strings.Contains(string(p.Files[2].Data), "PRIVATE KEY") {
			t.Errorf("unit %d files = %+v", i, p.Files)
		}
		if len(p.Raw) != 2 || !bytes.Equal(p.Raw[0].Data[:len(id.Serial)], []byte(id.Serial)) || len(p.Raw[0].Data) != 32 || len(p.Raw[1].Data) != 6 {
			t.Errorf("unit %d raw = %+v", i, p.Raw)
		}
		wantResult := "pass"
		if i == 3 {
			wantResult = "fail"
		}
		if r.Reply.Result != wantResult || r.Reply.Duplicate {
			t.Errorf("unit %d report reply = %+v, want %s", i, r.Reply, wantResult)
		}
	}
	// The records agree with what the units saw.
	ctx := context.Background()
	runs, err := st.Store().Runs(ctx, 0)
	if err != nil || len(runs) != n {
		t.Fatalf("Runs() = %d, %v; want %d", len(runs), err, n)
	}
	for _, r := range results {
		run, err := st.Store().Run(ctx, r.Announce.Run)
		if err != nil {
			t.Fatal(err)
		}
		if run.Serial != r.Identity.Serial || run.Result != r.Reply.Result || len(run.Steps) != 2 {
			t.Errorf("run %d recorded serial %s result %s steps %d; unit saw %s %s", run.ID, run.Serial, run.Result, len(run.Steps), r.Identity.Serial, r.Reply.Result)
		}
		evs, err := st.Store().Events(ctx, run.ID)
		if err != nil || len(evs) != r.Events {
			t.Errorf("run %d: %d events recorded, %v; the unit logged %d", run.ID, len(evs), err, r.Events)
		}
		for k, e := range evs {
			if e.Seq != k {
				t.Errorf("run %d event %d has seq %d", run.ID, k, e.Seq)
				break
			}
		}
	}
	sum, _ := st.Store().Summary(ctx, time.Now())
	if sum.Passed != n-1 || sum.Failed != 1 || sum.InProgress != 0 {
		t.Errorf("Summary() = %+v", sum)
	}
}

// TestReportTwice: a unit whose report's reply was lost reports again; it
// is recorded once, and its first result stands.
func TestReportTwice(t *testing.T) {
	f := stationtest.New(t)
	f.Bundle(t, "os.lfb", "1.0", []string{"qemu-x86_64"}, nil)
	st := start(t, f.Config(t, stationtest.Options{Bundles: []string{"os.lfb"}, NoCA: true}))
	c := client.New(st.URL(), nil)
	ctx := stationtest.Context(t)
	u := &stationtest.Unit{Board: "qemu-x86_64", Hardware: board(1)}
	r, err := u.Run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Report(ctx, r.Announce.Run, protocolReport(false))
	if err != nil || !again.Duplicate || again.Result != "pass" {
		t.Errorf("second report = %+v, %v; want duplicate, pass", again, err)
	}
	runs, _ := st.Store().Runs(ctx, 0)
	if len(runs) != 1 || runs[0].Result != "pass" {
		t.Errorf("records = %+v, want one passed run", runs)
	}
	// The same board again, later: a second attempt of the same unit with
	// the same identity.
	r2, err := u.Run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Announce.Run == r.Announce.Run || r2.Announce.Attempt != 2 || r2.Identity.Serial != r.Identity.Serial {
		t.Errorf("second run = %+v with %s; want a new run, attempt 2, serial %s", r2.Announce, r2.Identity.Serial, r.Identity.Serial)
	}
}

// TestRefusals: a board the line does not make, a revision it does not
// make, and no certificate without a CA, each with one clear line.
func TestRefusals(t *testing.T) {
	f := stationtest.New(t)
	f.Bundle(t, "os.lfb", "1.0", []string{"qemu-x86_64", "imx8:B"}, nil)
	st := start(t, f.Config(t, stationtest.Options{Bundles: []string{"os.lfb"}, Boards: []string{"qemu-x86_64:1", "imx8:B"}, NoCA: true}))
	c := client.New(st.URL(), nil)
	ctx := stationtest.Context(t)
	for _, tc := range []struct {
		board, rev, want string
	}{
		{"rpi4", "1", "board rpi4 revision \"1\" is not made on this line"},
		{"qemu-x86_64", "2", "board qemu-x86_64 revision \"2\" is not made on this line"},
		{"imx8", "A", "not made on this line"},
	} {
		u := &stationtest.Unit{Board: tc.board, Revision: tc.rev, Hardware: board(7)}
		_, err := u.Run(ctx, c)
		if !errors.Is(err, client.ErrRefused) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s:%s: %v, want a one-line refusal saying %q", tc.board, tc.rev, err, tc.want)
		}
	}
	if runs, _ := st.Store().Runs(ctx, 0); len(runs) != 0 {
		t.Errorf("refused boards left %d runs", len(runs))
	}
}

// TestExhausted: the serial range runs out; the next unit gets nothing and
// a message it can show while it waits, and it is served once an operator
// scans a serial for it.
func TestExhausted(t *testing.T) {
	f := stationtest.New(t)
	f.Bundle(t, "os.lfb", "1.0", []string{"qemu-x86_64"}, nil)
	st := start(t, f.Config(t, stationtest.Options{Bundles: []string{"os.lfb"}, Serials: "1-2", NoCA: true}))
	c := client.New(st.URL(), nil)
	ctx := stationtest.Context(t)
	for i := 0; i < 2; i++ {
		if _, err := (&stationtest.Unit{Board: "qemu-x86_64", Hardware: board(i)}).Run(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	var shown []string
	u := &stationtest.Unit{Board: "qemu-x86_64", Hardware: board(9), Wait: func(err error, next time.Duration) {
		shown = append(shown, fmt.Sprintf("%v; asking again in %v", err, next))
		cancel()
	}}
	_, err := u.Run(wctx, c)
	if !errors.Is(err, client.ErrExhausted) {
		t.Fatalf("third unit: %v, want ErrExhausted", err)
	}
	if len(shown) != 1 || !strings.Contains(shown[0], "station: identity: exhausted: the serial range LB-%06d 1-2 is used up; asking again in 10s") {
		t.Errorf("the unit would show %q", shown)
	}
	runs, _ := st.Store().Runs(ctx, 0)
	u3, _ := st.Store().Unit(ctx, runs[0].Unit)
	if u3.Identity.Serial != "" || len(u3.Identity.MACs) != 0 {
		t.Errorf("an exhausted station gave %+v", u3.Identity)
	}
}

// TestConfigRefusals: the station does not start, and says why in one
// line, with a bundle the config does not allow, a bundle whose per-unit
// format the serial range breaks, a bundle key as the station key, or a
// unit field it cannot fill.
func TestConfigRefusals(t *testing.T) {
	f := stationtest.New(t)
	f.Bundle(t, "os-2.lfb", "2.0", []string{"qemu-x86_64"}, nil)
	narrow := stationtest.UnitFields()[:1]
	narrow[0].Pattern = "LB-[0-9]{4}"
	f.Bundle(t, "narrow.lfb", "1.0", []string{"qemu-x86_64"}, narrow)
	f.Bundle(t, "certs.lfb", "1.0", []string{"qemu-x86_64"}, stationtest.UnitFields())
	for _, tc := range []struct {
		name string
		o    stationtest.Options
		want string
	}{
		{"version", stationtest.Options{Bundles: []string{"os-2.lfb"}, Allow: `[{product: demo-os, versions: ["1.*"]}]`},
			"bundle demo-os 2.0 (compatible qemu-x86_64) is not allowed"},
		{"compatible", stationtest.Options{Bundles: []string{"os-2.lfb"}, Allow: `[{product: demo-os, compatible: [imx8]}]`},
			"is not allowed"},
		{"product", stationtest.Options{Bundles: []string{"os-2.lfb"}, Allow: `[{product: other-os}]`}, "is not allowed"},
		{"format", stationtest.Options{Bundles: []string{"narrow.lfb"}},
			`the serial range does not fit the bundle: unitdata: value breaks its declared format: field "serial" (serial): "LB-000001" does not match LB-[0-9]{4}`},
		{"no CA", stationtest.Options{Bundles: []string{"certs.lfb"}, NoCA: true}, `unit field "cert" wants the unit's certificate: configure factory_ca`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Name = "cfg-" + strings.ReplaceAll(tc.name, " ", "-")
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), []string{"check", "-config", f.Config(t, tc.o)}, nil, &stdout, &stderr)
			if code != 1 || !strings.Contains(stderr.String(), tc.want) || strings.Count(stderr.String(), "\n") != 1 {
				t.Errorf("check exit %d, stderr %q; want 1 and one line with %q", code, stderr.String(), tc.want)
			}
		})
	}
	// A bundle key offered as the station key.
	_, priv, _ := bundle.GenerateKey(nil)
	pk, _ := bundle.MarshalPrivateKey(priv)
	os.WriteFile(filepath.Join(f.Dir, "release-as-station.key"), pk, 0o600)
	cfg := f.Config(t, stationtest.Options{Name: "bundlekey", Bundles: []string{"os-2.lfb"}})
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, bytes.Replace(b, []byte("station_key: station.key"), []byte("station_key: release-as-station.key"), 1), 0o644)
	var stderr bytes.Buffer
	if code := Main(context.Background(), []string{"check", "-config", cfg}, nil, &bytes.Buffer{}, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "not a station key") {
		t.Errorf("a bundle key as station key: exit %d, %q", code, stderr.String())
	}
	// And the good configuration passes.
	var stdout bytes.Buffer
	stderr.Reset()
	if code := Main(context.Background(), []string{"check", "-config", f.Config(t, stationtest.Options{Name: "good", Bundles: []string{"certs.lfb"}})},
		nil, &stdout, &stderr); code != 0 {
		t.Errorf("check of a good configuration: exit %d, %s", code, stderr.String())
	}
}

// TestUntrustedUnitData: unit data signed by a key outside the rescue's
// station trust store is refused by the unit.
func TestUntrustedUnitData(t *testing.T) {
	f := stationtest.New(t)
	f.Bundle(t, "os.lfb", "1.0", []string{"qemu-x86_64"}, stationtest.UnitFields())
	st := start(t, f.Config(t, stationtest.Options{Bundles: []string{"os.lfb"}}))
	other := stationtest.New(t) // another factory's station key
	bt, _ := trust(t, f)
	_, ost := trust(t, other)
	u := &stationtest.Unit{Board: "qemu-x86_64", Hardware: board(1), BundleTrust: bt, Stations: ost}
	_, err := u.Run(stationtest.Context(t), client.New(st.URL(), nil))
	if !errors.Is(err, unitdata.ErrUntrusted) {
		t.Errorf("unit data from an untrusted station: %v, want ErrUntrusted", err)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
