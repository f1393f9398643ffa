// Package web is the line's page, served by the station: units in
// progress with live progress (Server-Sent Events, no polling), passed and
// failed units, yield and units per hour, each unit's detail, and a CSV
// export of the records. One page, no framework, no external assets: the
// line PC may have no internet.
package web

import (
	"context"
	"embed"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lifeboat-updater/lifeboat/station/live"
	"github.com/lifeboat-updater/lifeboat/station/store"
)

//go:embed page.html run.html
var files embed.FS

var (
	pageT = template.Must(template.ParseFS(files, "page.html"))
	runT  = template.Must(template.New("run.html").Funcs(template.FuncMap{
		"when": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.Local().Format("2006-01-02 15:04:05.000")
		},
	}).ParseFS(files, "run.html"))
)

// Config is what the page needs.
type Config struct {
	Station string
	Store   store.Store
	Hub     *live.Hub
	Now     func() time.Time
	// Recent is how many runs the page starts with (default 500); the
	// CSV export has all.
	Recent int
}

// Handler serves the page and its data.
type Handler struct {
	cfg Config
	mux *http.ServeMux
}

// New returns the line's web handler.
func New(cfg Config) *Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Recent == 0 {
		cfg.Recent = 500
	}
	h := &Handler{cfg: cfg, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /{$}", h.page)
	h.mux.HandleFunc("GET /live", h.live)
	h.mux.HandleFunc("GET /line.json", h.snapshotJSON)
	h.mux.HandleFunc("GET /runs/{id}", h.run)
	h.mux.HandleFunc("GET /runs/{id}/events.jsonl", h.runEvents)
	h.mux.HandleFunc("GET /runs.csv", h.csv)
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The page's own script and style only: nothing from elsewhere, no
	// framing by another site.
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	h.mux.ServeHTTP(w, r)
}

// Summary is the line's numbers as the page shows them.
type Summary struct {
	Station      string  `json:"station"`
	InProgress   int     `json:"in_progress"`
	Passed       int     `json:"passed"`
	Failed       int     `json:"failed"`
	Yield        float64 `json:"yield"` // 0 to 1
	UnitsPerHour float64 `json:"units_per_hour"`
}

// Snapshot is the page's whole state: the summary and the recent runs,
// each with its live progress when it is in progress.
type Snapshot struct {
	Summary Summary       `json:"summary"`
	Runs    []live.Update `json:"runs"`
}

func (h *Handler) summary(ctx context.Context) (Summary, error) {
	now := h.cfg.Now()
	s, err := h.cfg.Store.Summary(ctx, now)
	if err != nil {
		return Summary{}, err
	}
	return Summary{Station: h.cfg.Station, InProgress: s.InProgress, Passed: s.Passed, Failed: s.Failed,
		Yield: s.Yield(), UnitsPerHour: s.UnitsPerHour(now)}, nil
}

func (h *Handler) snapshot(ctx context.Context) (Snapshot, error) {
	var snap Snapshot
	var err error
	if snap.Summary, err = h.summary(ctx); err != nil {
		return snap, err
	}
	runs, err := h.cfg.Store.Runs(ctx, h.cfg.Recent)
	if err != nil {
		return snap, err
	}
	for _, r := range runs {
		u := live.Update{Run: r}
		if p, ok := h.cfg.Hub.Get(r.ID); ok && r.Result == "" {
			u.Progress = &p
		}
		snap.Runs = append(snap.Runs, u)
	}
	return snap, nil
}

func (h *Handler) page(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	pageT.Execute(w, struct{ Station string }{h.cfg.Station})
}

func (h *Handler) snapshotJSON(w http.ResponseWriter, r *http.Request) {
	snap, err := h.snapshot(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(snap)
}

// live streams the line: a "snapshot" event, then a "run" event for each
// change and a "summary" event after each batch of changes.
func (h *Handler) live(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	// Subscribe before the snapshot: a change in between comes twice
	// rather than never.
	sub, cancel := h.cfg.Hub.Subscribe()
	defer cancel()
	snap, err := h.snapshot(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	send := func(kind string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", kind, b)
		return err
	}
	if send("snapshot", snap) != nil {
		return
	}
	fl.Flush()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keepalive.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
				return
			}
		case <-sub.C:
			for _, u := range sub.Take() {
				if send("run", u) != nil {
					return
				}
			}
			if s, err := h.summary(r.Context()); err == nil {
				if send("summary", s) != nil {
					return
				}
			}
			// Batch what arrives in the next moment into one summary.
			t := time.NewTimer(200 * time.Millisecond)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		fl.Flush()
	}
}

func (h *Handler) runID(w http.ResponseWriter, r *http.Request) (store.Run, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		http.NotFound(w, r)
		return store.Run{}, false
	}
	run, err := h.cfg.Store.Run(r.Context(), id)
	if err != nil {
		http.NotFound(w, r)
		return store.Run{}, false
	}
	return run, true
}

type eventRow struct {
	Seq  int
	Time time.Time
	Kind string
	Body string
}

func (h *Handler) run(w http.ResponseWriter, r *http.Request) {
	run, ok := h.runID(w, r)
	if !ok {
		return
	}
	u, err := h.cfg.Store.Unit(r.Context(), run.Unit)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	evs, err := h.cfg.Store.Events(r.Context(), run.ID)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	var rows []eventRow
	for _, e := range evs {
		rows = append(rows, eventRow{Seq: e.Seq, Time: e.Time, Kind: e.Kind, Body: string(e.Body)})
	}
	p, hasP := h.cfg.Hub.Get(run.ID)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	runT.Execute(w, map[string]any{"Station": h.cfg.Station, "Run": run, "Unit": u, "Events": rows,
		"Progress": p, "HasProgress": hasP && run.Result == ""})
}

func (h *Handler) runEvents(w http.ResponseWriter, r *http.Request) {
	run, ok := h.runID(w, r)
	if !ok {
		return
	}
	evs, err := h.cfg.Store.Events(r.Context(), run.ID)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	for _, e := range evs {
		w.Write(append(e.Body, '\n'))
	}
}

// CSVHeader is the CSV export's first line.
var CSVHeader = []string{"run", "unit", "attempt", "station", "serial", "macs", "board", "revision", "hardware",
	"bundle", "product", "version", "started", "finished", "result", "reason", "read_back", "duration_seconds"}

// cell keeps a spreadsheet from running a value as a formula: a unit's
// failure reason is text from the unit.
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func (h *Handler) csv(w http.ResponseWriter, r *http.Request) {
	runs, err := h.cfg.Store.Runs(r.Context(), 0)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="line.csv"`)
	cw := csv.NewWriter(w)
	cw.Write(CSVHeader)
	macs := map[int64]string{}
	for i := len(runs) - 1; i >= 0; i-- { // oldest first, as a log reads
		run := runs[i]
		m, ok := macs[run.Unit]
		if !ok {
			if u, err := h.cfg.Store.Unit(r.Context(), run.Unit); err == nil {
				m = strings.Join(u.Identity.MACs, " ")
			}
			macs[run.Unit] = m
		}
		cw.Write([]string{strconv.FormatInt(run.ID, 10), strconv.FormatInt(run.Unit, 10), strconv.Itoa(run.Attempt),
			cell(run.Station), cell(run.Serial), m, cell(run.Board), cell(run.Revision), cell(run.HWKey),
			cell(run.Bundle), cell(run.Product), cell(run.Version), stamp(run.Started), stamp(run.Finished),
			run.Result, cell(run.Reason), run.ReadBack, strconv.FormatFloat(run.Seconds, 'f', 1, 64)})
	}
	cw.Flush()
}
