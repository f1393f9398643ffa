package station

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lifeboat-updater/lifeboat/install"
	"github.com/lifeboat-updater/lifeboat/internal/browser"
	"github.com/lifeboat-updater/lifeboat/station/client"
	"github.com/lifeboat-updater/lifeboat/station/protocol"
	"github.com/lifeboat-updater/lifeboat/station/stationtest"
	"github.com/lifeboat-updater/lifeboat/station/web"
)

// manualUnit drives the protocol step by step, so the test decides when
// the page must change.
type manualUnit struct {
	t   *testing.T
	c   *client.Client
	run int64
	log *client.Log
	obs install.Observer
}

func newManualUnit(t *testing.T, c *client.Client, i int) *manualUnit {
	ctx := context.Background()
	a, err := c.Announce(ctx, protocol.Announce{Board: "qemu-x86_64", Revision: "1", Hardware: board(i)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Identity(ctx, a.Run); err != nil {
		t.Fatal(err)
	}
	m := &manualUnit{t: t, c: c, run: a.Run, log: c.NewLog(a.Run)}
	m.obs = install.JSONLines(m.log)
	return m
}

// progress sends step-start (if new) and a progress event.
func (m *manualUnit) progress(step, steps int, percent float64) {
	if percent == 0 {
		m.obs(install.Event{Type: install.EventStepStart, Time: time.Now(), Step: &install.StepInfo{Step: step, Steps: steps, Type: "image", Target: "rootfs"}})
	} else {
		m.obs(install.Event{Type: install.EventProgress, Time: time.Now(), Progress: &install.Progress{Step: step, Steps: steps, Percent: percent}})
	}
	if err := m.log.Flush(context.Background()); err != nil {
		m.t.Fatal(err)
	}
}

func (m *manualUnit) report(pass bool, reason string) {
	rep := protocol.Report{Pass: pass, Reason: reason, ReadBack: protocol.ReadBackPass, Seconds: 12.5,
		Steps: []protocol.StepResult{{Step: 1, Name: "image rootfs", Result: "ok", Seconds: 10}, {Step: 2, Name: "unit-data", Result: "ok", Seconds: 2.5}}}
	if !pass {
		rep.ReadBack, rep.Steps[1].Result = protocol.ReadBackFail, "failed"
	}
	m.obs(install.Event{Type: install.EventDone, Time: time.Now(), Done: &install.DoneInfo{Steps: 2}})
	rep.Events = m.log.Unsent()
	if _, err := m.c.Report(context.Background(), m.run, rep); err != nil {
		m.t.Fatal(err)
	}
}

// TestLinePage opens the line page in a real browser and drives units
// through the real protocol: the page follows them live (no reload),
// agrees with the database, shows a unit's detail, and exports CSV.
func TestLinePage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser; skipped with -short")
	}
	f := stationtest.New(t)
	f.Bundle(t, "os.lfb", "1.0", []string{"qemu-x86_64"}, nil)
	st := start(t, f.Config(t, stationtest.Options{Name: "line-7", Bundles: []string{"os.lfb"}, NoCA: true}))
	c := client.New(st.URL(), nil)
	ctx := context.Background()

	// One unit finished before the page opens: it comes with the snapshot.
	early := newManualUnit(t, c, 1)
	early.report(true, "")

	b := browser.New(t)
	poll := func(what, expr string) {
		t.Helper()
		browser.Get(t, b, what, time.Minute, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond)))
	}
	text := func(sel string) string {
		t.Helper()
		return browser.Get(t, b, "read "+sel, 30*time.Second, chromedp.Text(chromedp.CSS(sel)))
	}
	browser.Do(t, b, "open the line page", time.Minute, chromedp.Navigate(st.URL()))
	poll("page is live", `document.getElementById("conn").textContent === "live"`)
	poll("the early unit is listed as passed", fmt.Sprintf(`!!document.querySelector("#passed-runs #run-%d")`, early.run))

	// A unit in progress: its row follows each event.
	u := newManualUnit(t, c, 2)
	row := fmt.Sprintf("#progress #run-%d", u.run)
	poll("the new unit appears in progress", fmt.Sprintf(`!!document.querySelector(%q)`, row))
	u.progress(1, 2, 0)
	u.progress(1, 2, 50)
	poll("25%", fmt.Sprintf(`document.querySelector("%s .percent")?.textContent === "25%%"`, row))
	if got := text(row + " .phase"); got != "progress (step 1/2 rootfs)" {
		t.Errorf("phase = %q", got)
	}
	if got := text(row + " .serial"); got != "LB-000002" {
		t.Errorf("serial = %q, want LB-000002", got)
	}
	u.progress(2, 2, 0)
	u.progress(2, 2, 50)
	poll("75%", fmt.Sprintf(`document.querySelector("%s .percent")?.textContent === "75%%"`, row))
	poll("one in progress", `document.getElementById("in-progress").textContent === "1"`)
	browser.Screenshot(t, b, "station-line-live")

	// A unit fails with a reason that holds markup: shown as text.
	bad := newManualUnit(t, c, 3)
	bad.progress(1, 2, 0)
	bad.report(false, `read-back differs <b id="x">at chunk 2</b>`)
	poll("the failed unit is listed", fmt.Sprintf(`!!document.querySelector("#failed-runs #run-%d")`, bad.run))
	if got := text(fmt.Sprintf("#failed-runs #run-%d .reason", bad.run)); got != `read-back differs <b id="x">at chunk 2</b>` {
		t.Errorf("failure reason shown as %q", got)
	}
	if n := browser.Get(t, b, "markup", 10*time.Second, chromedp.Evaluate[int](`document.querySelectorAll("#x").length`)); n != 0 {
		t.Errorf("a unit's reason became %d page elements", n)
	}
	u.progress(2, 2, 100)
	u.report(true, "")
	poll("the unit moved to passed", fmt.Sprintf(`!!document.querySelector("#passed-runs #run-%d") && !document.querySelector(%q)`, u.run, row))
	poll("counts settle", `document.getElementById("in-progress").textContent === "0" && document.getElementById("passed").textContent === "2"`)

	// The page agrees with the database.
	sum, err := st.Store().Summary(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for sel, want := range map[string]string{"#passed": strconv.Itoa(sum.Passed), "#failed": strconv.Itoa(sum.Failed),
		"#in-progress": strconv.Itoa(sum.InProgress), "#yield": fmt.Sprintf("%.1f%%", 100*sum.Yield())} {
		if got := text(sel); got != want {
			t.Errorf("page %s = %q, database says %q", sel, got, want)
		}
	}
	if sum.Passed != 2 || sum.Failed != 1 {
		t.Errorf("database summary %+v, want 2 passed 1 failed", sum)
	}
	rows := browser.Get(t, b, "rows", 10*time.Second, chromedp.Evaluate[int](`document.querySelectorAll("tbody tr").length`))
	if runs, _ := st.Store().Runs(ctx, 0); rows != len(runs) {
		t.Errorf("page lists %d runs, database has %d", rows, len(runs))
	}
	browser.Screenshot(t, b, "station-line")

	// A unit's detail: its steps and every event in the database.
	browser.Do(t, b, "open a unit's detail", time.Minute, chromedp.Navigate(fmt.Sprintf("%s/runs/%d", st.URL(), u.run)))
	evs, _ := st.Store().Events(ctx, u.run)
	if got := browser.Get(t, b, "events", 10*time.Second, chromedp.Evaluate[int](`document.querySelectorAll("#events tr").length - 1`)); got != len(evs) || got < 5 {
		t.Errorf("detail lists %d events, database has %d", got, len(evs))
	}
	if got := text("#result"); got != "pass" {
		t.Errorf("detail result = %q", got)
	}
	if got := browser.Get(t, b, "steps", 10*time.Second, chromedp.Evaluate[int](`document.querySelectorAll("#steps tr").length - 1`)); got != 2 {
		t.Errorf("detail lists %d steps, want 2", got)
	}
	browser.Screenshot(t, b, "station-unit")

	// CSV export: one row per run, the failed one's reason intact.
	resp, err := http.Get(st.URL() + "/runs.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	recs, err := csv.NewReader(resp.Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 || fmt.Sprint(recs[0]) != fmt.Sprint(web.CSVHeader) {
		t.Fatalf("CSV has %d records, header %v", len(recs), recs[0])
	}
	if recs[3][4] != "LB-000003" || recs[3][14] != "fail" || recs[3][15] != `read-back differs <b id="x">at chunk 2</b>` {
		t.Errorf("CSV row of the failed unit: %v", recs[3])
	}
	// The page's JSON agrees too.
	var snap web.Snapshot
	jr, err := http.Get(st.URL() + "/line.json")
	if err != nil {
		t.Fatal(err)
	}
	defer jr.Body.Close()
	if err := json.NewDecoder(jr.Body).Decode(&snap); err != nil || snap.Summary.Passed != 2 || len(snap.Runs) != 3 {
		t.Errorf("line.json = %+v, %v", snap.Summary, err)
	}
}
