// Package server answers the factory units: the protocol calls of
// docs/station.md (announce, identity, unit data, events, result, scanned
// serials) and the bundles themselves, with Range support. It decides
// policy (which boards, which bundle) from its Config and keeps every
// record in the store; the live line state goes to a live.Hub for the line
// page.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/station/identity"
	"github.com/lifeboat-updater/lifeboat/station/live"
	"github.com/lifeboat-updater/lifeboat/station/protocol"
	"github.com/lifeboat-updater/lifeboat/station/store"
	"github.com/lifeboat-updater/lifeboat/unitdata"
)

// Bundle is a bundle the station serves: opened, its signature verified
// and its manifest allowed by the configuration.
type Bundle struct {
	Name     string // in URLs: /bundles/NAME
	Path     string
	Size     int64
	Manifest *bundle.Manifest
}

// Config is what the server needs.
type Config struct {
	Station string // this station's name, recorded with each run
	Store   store.Store
	Pools   store.Pools
	CA      *identity.CA  // nil: no per-unit certificates
	Signer  bundle.Signer // the station key: signs unit data
	// Boards lists the boards made on this line: "name" (any revision)
	// or "name:revision".
	Boards  []string
	Bundles []Bundle
	Hub     *live.Hub // nil: no live view
	Logf    func(format string, args ...any)
	Now     func() time.Time
}

// Server is an http.Handler for the protocol and the bundles.
type Server struct {
	cfg Config
	mux *http.ServeMux
	// mu orders the read-modify-write of a run's live progress.
	mu sync.Mutex
}

// New returns the server.
func New(cfg Config) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logf == nil {
		cfg.Logf = log.Printf
	}
	if cfg.Hub == nil {
		cfg.Hub = live.NewHub()
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	s.mux.HandleFunc("POST "+protocol.PathAnnounce, s.announce)
	s.mux.HandleFunc("POST "+protocol.PathIdentity, s.identity)
	s.mux.HandleFunc("GET "+protocol.PathUnitData, s.unitData)
	s.mux.HandleFunc("POST "+protocol.PathEvents, s.events)
	s.mux.HandleFunc("POST "+protocol.PathResult, s.result)
	s.mux.HandleFunc("POST "+protocol.PathSerials, s.scan)
	s.mux.HandleFunc("GET /bundles/{name}", s.bundle)
	s.mux.HandleFunc("HEAD /bundles/{name}", s.bundle)
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// apiError is an error with its protocol code and HTTP status.
type apiError struct {
	status int
	code   string
	msg    string
	retry  time.Duration
}

func (e *apiError) Error() string { return e.msg }

func fail(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

func (s *Server) reply(w http.ResponseWriter, r *http.Request, v any, err error) {
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			switch {
			case errors.Is(err, store.ErrExhausted):
				ae = &apiError{status: http.StatusServiceUnavailable, code: protocol.CodeExhausted, msg: err.Error(), retry: protocol.DefaultRetry}
			case errors.Is(err, store.ErrNotFound):
				ae = fail(http.StatusNotFound, protocol.CodeUnknownRun, "%v", err)
			case errors.Is(err, store.ErrDuplicate):
				ae = fail(http.StatusConflict, protocol.CodeDuplicate, "%v", err)
			default:
				ae = fail(http.StatusInternalServerError, protocol.CodeInternal, "%v", err)
			}
		}
		body := protocol.Error{Error: ae.msg, Code: ae.code}
		if ae.retry > 0 {
			body.RetryAfter = int(ae.retry / time.Second)
			w.Header().Set("Retry-After", strconv.Itoa(body.RetryAfter))
		}
		if ae.status >= 500 || ae.code == protocol.CodeExhausted {
			s.cfg.Logf("station: %s %s: %s", r.Method, r.URL.Path, ae.msg)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(ae.status)
		json.NewEncoder(w).Encode(body)
		return
	}
	if v == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// maxBody bounds a request: a report with a long event log fits.
const maxBody = 16 << 20

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	if err := dec.Decode(v); err != nil {
		return fail(http.StatusBadRequest, protocol.CodeBadRequest, "bad request body: %v", err)
	}
	return nil
}

func runID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("run"), 10, 64)
	if err != nil || id <= 0 {
		return 0, fail(http.StatusBadRequest, protocol.CodeBadRequest, "bad run id %q", r.PathValue("run"))
	}
	return id, nil
}

// checkID keeps hardware ids plain: they are keys, log words and CSV.
func checkID(name, v string) error {
	if len(v) > 128 {
		return fail(http.StatusBadRequest, protocol.CodeBadRequest, "%s is %d bytes, at most 128", name, len(v))
	}
	for _, c := range []byte(v) {
		if c <= 0x20 || c > 0x7e || c == '"' || c == ',' {
			return fail(http.StatusBadRequest, protocol.CodeBadRequest, "%s %q holds a space, a quote, a comma or a byte that is not printable ASCII", name, v)
		}
	}
	return nil
}

func (s *Server) boardAllowed(board, rev string) bool {
	for _, b := range s.cfg.Boards {
		n, r, hasRev := strings.Cut(b, ":")
		if n == board && (!hasRev || r == rev) {
			return true
		}
	}
	return false
}

func (s *Server) bundleFor(board, rev string) *Bundle {
	for i := range s.cfg.Bundles {
		if s.cfg.Bundles[i].Manifest.CompatibleWith(board, rev) {
			return &s.cfg.Bundles[i]
		}
	}
	return nil
}

func (s *Server) bundleNamed(name string) *Bundle {
	for i := range s.cfg.Bundles {
		if s.cfg.Bundles[i].Name == name {
			return &s.cfg.Bundles[i]
		}
	}
	return nil
}

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (s *Server) announce(w http.ResponseWriter, r *http.Request) {
	v, err := s.doAnnounce(r)
	s.reply(w, r, v, err)
}

func (s *Server) doAnnounce(r *http.Request) (*protocol.AnnounceReply, error) {
	var a protocol.Announce
	if err := decode(r, &a); err != nil {
		return nil, err
	}
	if a.Protocol != protocol.Version {
		return nil, fail(http.StatusBadRequest, protocol.CodeVersion, "protocol version %d, this station speaks %d", a.Protocol, protocol.Version)
	}
	for _, f := range []struct{ name, v string }{{"board", a.Board}, {"revision", a.Revision}, {"emmc_cid", a.Hardware.EMMCCID},
		{"cpu_serial", a.Hardware.CPUSerial}, {"mac", a.Hardware.MAC}, {"rescue", a.Rescue}} {
		if err := checkID(f.name, f.v); err != nil {
			return nil, err
		}
	}
	if a.Board == "" || a.Hardware.Key() == "" {
		return nil, fail(http.StatusBadRequest, protocol.CodeBadRequest, "an announce needs the board and at least one hardware id (emmc_cid, cpu_serial, mac)")
	}
	if !s.boardAllowed(a.Board, a.Revision) {
		return nil, fail(http.StatusForbidden, protocol.CodeBoardRefused, "board %s revision %q is not made on this line (allowed: %s)",
			a.Board, a.Revision, strings.Join(s.cfg.Boards, ", "))
	}
	b := s.bundleFor(a.Board, a.Revision)
	if b == nil {
		return nil, fail(http.StatusConflict, protocol.CodeNoBundle, "no bundle of this station is compatible with %s:%s", a.Board, a.Revision)
	}
	run, resumed, err := s.cfg.Store.Announce(r.Context(), store.NewRun{
		Station: s.cfg.Station, Board: a.Board, Revision: a.Revision, Hardware: a.Hardware,
		Bundle: b.Name, Product: b.Manifest.Product, Version: b.Manifest.Version, Time: s.cfg.Now(),
	})
	if err != nil {
		return nil, err
	}
	s.cfg.Hub.Run(run)
	return &protocol.AnnounceReply{
		Unit: run.Unit, Run: run.ID, Attempt: run.Attempt, Resumed: resumed,
		Bundle: protocol.Bundle{Name: b.Name, URL: baseURL(r) + "/bundles/" + b.Name, Product: b.Manifest.Product,
			Version: b.Manifest.Version, IndexSHA256: b.Manifest.IndexSHA256, Size: b.Size},
	}, nil
}

// openRun returns a run that has not reported yet.
func (s *Server) openRun(ctx context.Context, r *http.Request) (store.Run, error) {
	id, err := runID(r)
	if err != nil {
		return store.Run{}, err
	}
	return s.cfg.Store.Run(ctx, id)
}

// allocate gives the run's unit its identity (the same again when it has
// one) and, with a CA, its certificate.
func (s *Server) allocate(ctx context.Context, run store.Run) (identity.Identity, error) {
	id, err := s.cfg.Store.Allocate(ctx, run.Unit, s.cfg.Pools)
	if err != nil {
		return id, err
	}
	if s.cfg.CA != nil && id.Certificate == "" {
		cert, key, err := s.cfg.CA.Issue(id.Serial, s.cfg.Now())
		if err != nil {
			return id, err
		}
		if id, err = s.cfg.Store.SetCredentials(ctx, run.Unit, cert, key); err != nil {
			return id, err
		}
	}
	return id, nil
}

func (s *Server) identity(w http.ResponseWriter, r *http.Request) {
	run, err := s.openRun(r.Context(), r)
	if err != nil {
		s.reply(w, r, nil, err)
		return
	}
	id, err := s.allocate(r.Context(), run)
	if err != nil {
		s.reply(w, r, nil, err)
		return
	}
	if run.Serial == "" {
		// The page shows the serial from now on.
		if run, err = s.cfg.Store.Run(r.Context(), run.ID); err == nil && run.Result == "" {
			s.cfg.Hub.Run(run)
		}
	}
	id.PrivateKey = "" // only in the unit data, and only where the bundle declares it
	s.reply(w, r, id, nil)
}

func (s *Server) unitData(w http.ResponseWriter, r *http.Request) {
	b, err := s.doUnitData(r)
	if err != nil {
		s.reply(w, r, nil, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

func (s *Server) doUnitData(r *http.Request) ([]byte, error) {
	run, err := s.openRun(r.Context(), r)
	if err != nil {
		return nil, err
	}
	b := s.bundleNamed(run.Bundle)
	if b == nil {
		return nil, fail(http.StatusConflict, protocol.CodeNoBundle, "run %d was for bundle %q, which this station does not serve", run.ID, run.Bundle)
	}
	id, err := s.allocate(r.Context(), run)
	if err != nil {
		return nil, err
	}
	u, err := s.cfg.Store.Unit(r.Context(), run.Unit)
	if err != nil {
		return nil, err
	}
	d := &unitdata.Data{
		Format: unitdata.FormatVersion, Station: s.cfg.Station, Serial: id.Serial, Hardware: u.Hardware,
		Bundle: unitdata.BundleRef{Product: b.Manifest.Product, Version: b.Manifest.Version, IndexSHA256: b.Manifest.IndexSHA256},
		Issued: s.cfg.Now().UTC(), Values: map[string]string{},
	}
	for i := range b.Manifest.UnitData {
		f := &b.Manifest.UnitData[i]
		v, err := s.value(f, id)
		if err != nil {
			return nil, err
		}
		// The station refuses to sign what the device would refuse.
		if err := unitdata.CheckValue(f, v); err != nil {
			return nil, fail(http.StatusConflict, protocol.CodeBadRequest, "%v", err)
		}
		d.Values[f.Name] = v
	}
	return unitdata.Sign(d, s.cfg.Signer)
}

func (s *Server) value(f *bundle.UnitField, id identity.Identity) (string, error) {
	switch f.From {
	case bundle.UnitFromSerial:
		return id.Serial, nil
	case bundle.UnitFromMAC:
		if f.Index >= len(id.MACs) {
			return "", fail(http.StatusConflict, protocol.CodeExhausted, "field %q wants MAC %d, the unit has %d (macs.per_unit)", f.Name, f.Index, len(id.MACs))
		}
		return id.MACs[f.Index], nil
	case bundle.UnitFromCertificate, bundle.UnitFromPrivateKey, bundle.UnitFromCA:
		if s.cfg.CA == nil {
			return "", fail(http.StatusConflict, protocol.CodeNoCredentials, "field %q wants the unit's %s and this station has no factory CA", f.Name, f.From)
		}
		switch f.From {
		case bundle.UnitFromCertificate:
			return id.Certificate, nil
		case bundle.UnitFromPrivateKey:
			return id.PrivateKey, nil
		}
		return s.cfg.CA.PEM, nil
	}
	return "", fail(http.StatusConflict, protocol.CodeBadRequest, "field %q: unknown source %q", f.Name, f.From)
}

// parseEvents reads install events, one JSON object a line, numbered from
// first.
func parseEvents(body io.Reader, first int, now time.Time) ([]store.Event, error) {
	dec := json.NewDecoder(io.LimitReader(body, maxBody))
	var out []store.Event
	for seq := first; ; seq++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, fail(http.StatusBadRequest, protocol.CodeBadRequest, "event %d: %v", seq, err)
		}
		e, err := storeEvent(protocol.Event{Seq: seq, Body: raw}, now)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
}

func storeEvent(pe protocol.Event, now time.Time) (store.Event, error) {
	var head struct {
		Event string    `json:"event"`
		Time  time.Time `json:"time"`
	}
	if err := json.Unmarshal(pe.Body, &head); err != nil || head.Event == "" || pe.Seq < 0 {
		return store.Event{}, fail(http.StatusBadRequest, protocol.CodeBadRequest, "event %d is not an install event object", pe.Seq)
	}
	if head.Time.IsZero() {
		head.Time = now
	}
	return store.Event{Seq: pe.Seq, Kind: head.Event, Time: head.Time, Body: pe.Body}, nil
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	id, err := runID(r)
	if err != nil {
		s.reply(w, r, nil, err)
		return
	}
	first, err := strconv.Atoi(r.URL.Query().Get("seq"))
	if err != nil || first < 0 {
		s.reply(w, r, nil, fail(http.StatusBadRequest, protocol.CodeBadRequest, "events need ?seq=N, the number of the first line"))
		return
	}
	evs, err := parseEvents(r.Body, first, s.cfg.Now())
	if err == nil {
		err = s.cfg.Store.AddEvents(r.Context(), id, evs)
	}
	if err == nil {
		s.advance(r.Context(), id, evs)
	}
	s.reply(w, r, nil, err)
}

// advance moves a run's live progress on with its new events.
func (s *Server) advance(ctx context.Context, run int64, evs []store.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.cfg.Hub.Known(run) {
		// A station restarted mid-line learns its runs again from the
		// store as their units speak.
		if r, err := s.cfg.Store.Run(ctx, run); err == nil && r.Result == "" {
			s.cfg.Hub.Run(r)
		}
	}
	p, _ := s.cfg.Hub.Get(run)
	for _, e := range evs {
		p = live.Advance(p, e.Body)
	}
	s.cfg.Hub.Progress(run, p)
}

func (s *Server) result(w http.ResponseWriter, r *http.Request) {
	v, err := s.doResult(r)
	s.reply(w, r, v, err)
}

func (s *Server) doResult(r *http.Request) (*protocol.ReportReply, error) {
	id, err := runID(r)
	if err != nil {
		return nil, err
	}
	var rep protocol.Report
	if err := decode(r, &rep); err != nil {
		return nil, err
	}
	switch rep.ReadBack {
	case protocol.ReadBackPass, protocol.ReadBackFail, protocol.ReadBackNone:
	default:
		return nil, fail(http.StatusBadRequest, protocol.CodeBadRequest, "read_back %q, want pass, fail or none", rep.ReadBack)
	}
	if !rep.Pass && rep.Reason == "" {
		return nil, fail(http.StatusBadRequest, protocol.CodeBadRequest, "a failed run needs a reason")
	}
	if rep.Pass && rep.ReadBack == protocol.ReadBackFail {
		return nil, fail(http.StatusBadRequest, protocol.CodeBadRequest, "a run whose read-back failed cannot pass")
	}
	now := s.cfg.Now()
	res := store.Result{Pass: rep.Pass, Reason: rep.Reason, ReadBack: rep.ReadBack, Steps: rep.Steps, Seconds: rep.Seconds, Time: now}
	for _, pe := range rep.Events {
		e, err := storeEvent(pe, now)
		if err != nil {
			return nil, err
		}
		res.Events = append(res.Events, e)
	}
	run, dup, err := s.cfg.Store.Finish(r.Context(), id, res)
	if err != nil {
		return nil, err
	}
	if !dup {
		s.cfg.Hub.Run(run)
		s.cfg.Logf("station: run %d unit %s (%s): %s %s", run.ID, run.Serial, run.HWKey, run.Result, run.Reason)
	}
	return &protocol.ReportReply{Run: run.ID, Result: run.Result, Duplicate: dup}, nil
}

func (s *Server) scan(w http.ResponseWriter, r *http.Request) {
	var sc protocol.Scan
	err := decode(r, &sc)
	if err == nil && !identity.SerialOK(sc.Serial) {
		err = fail(http.StatusBadRequest, protocol.CodeBadRequest, "serial %q: want 1 to 64 of A-Z a-z 0-9 . _ -", sc.Serial)
	}
	if err == nil {
		err = s.fitsBundles(sc.Serial)
	}
	if err == nil {
		err = s.cfg.Store.RegisterSerial(r.Context(), sc.Serial, sc.Hardware.Key())
	}
	s.reply(w, r, nil, err)
}

// fitsBundles refuses a scanned serial that a bundle's serial field would
// refuse: the operator learns it at the scanner, not the unit at its end.
func (s *Server) fitsBundles(serial string) error {
	for _, b := range s.cfg.Bundles {
		for i := range b.Manifest.UnitData {
			f := &b.Manifest.UnitData[i]
			if f.From != bundle.UnitFromSerial {
				continue
			}
			if err := unitdata.CheckValue(f, serial); err != nil {
				return fail(http.StatusBadRequest, protocol.CodeBadRequest, "bundle %s: %v", b.Name, err)
			}
		}
	}
	return nil
}

// bundle serves a bundle file with Range support (a unit resumes, or
// fetches only the chunks it lacks).
func (s *Server) bundle(w http.ResponseWriter, r *http.Request) {
	b := s.bundleNamed(r.PathValue("name"))
	if b == nil {
		http.NotFound(w, r)
		return
	}
	f, err := os.Open(b.Path)
	if err != nil {
		s.reply(w, r, nil, err)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		s.reply(w, r, nil, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, b.Name, fi.ModTime(), f)
}
