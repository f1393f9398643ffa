package webui

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lifeboat-updater/lifeboat/boards"
	"github.com/lifeboat-updater/lifeboat/install"
)

// Config is what a Server needs.
type Config struct {
	// Device is what the page acts on.
	Device Device
	// Password, when set, opens the page instead of a one-time code (the
	// board profile's web.password_hash).
	Password *boards.PasswordHash
	// Logf prints a line on the rescue's console: where the page is, the
	// one-time code, sign-ins, wrong codes, refused requests, uploads. nil
	// prints nothing.
	Logf func(format string, args ...any)
	// Hosts are host names the page may be opened by besides IP
	// addresses, "localhost" and names under .local. Requests naming any
	// other host are refused: a web site that points its own name at the
	// device (DNS rebinding) cannot read the page.
	Hosts []string
	// StallTimeout ends an upload that sends nothing for that long; 0
	// means 2 minutes.
	StallTimeout time.Duration
	// Now is the clock of the sign-in limits and sessions; nil means
	// time.Now.
	Now func() time.Time
}

// Server serves the recovery page and its API (docs/web.md).
type Server struct {
	cfg      Config
	code     string
	secret   secret
	hub      *hub
	sessions *sessions
	handler  http.Handler
	routes   map[string]http.HandlerFunc // "METHOD /path"
	cop      *http.CrossOriginProtection

	loginMu sync.Mutex // one sign-in attempt at a time: the limiter's wait, check and outcome together
	limiter *limiter

	mu   sync.Mutex
	job  *job // the running or last job
	busy bool

	ctx    context.Context // ends running jobs at Close
	cancel context.CancelFunc
	jobs   sync.WaitGroup

	srvMu sync.Mutex
	srv   *http.Server
	ln    net.Listener

	refusedMu    sync.Mutex
	refusedAt    time.Time // last console line about a refused request
	refusedQuiet int       // refused requests not printed since
}

//go:embed page
var pageFS embed.FS

// New makes a server for cfg.Device. Without a password it makes the
// one-time code (crypto/rand: on a board without a hardware random number
// generator this may wait for the kernel's entropy pool, so the rescue
// makes the server once its network is up, not before).
func New(cfg Config) (*Server, error) {
	if cfg.Device == nil {
		return nil, errors.New("webui: no device")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = 2 * time.Minute
	}
	s := &Server{
		cfg:      cfg,
		hub:      newHub(),
		sessions: &sessions{now: cfg.Now, m: map[[32]byte]time.Time{}},
		limiter:  newLimiter(cfg.Now),
		cop:      http.NewCrossOriginProtection(),
	}
	if cfg.Password != nil {
		s.secret.password = cfg.Password
	} else {
		code, err := newCode()
		if err != nil {
			return nil, fmt.Errorf("webui: making the access code: %w", err)
		}
		s.code = code
		s.secret.code = sha256Of(normalizeCode(code))
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	s.routes = map[string]http.HandlerFunc{
		"GET /":                   s.asset("page/index.html", "text/html; charset=utf-8"),
		"GET /page.css":           s.asset("page/page.css", "text/css; charset=utf-8"),
		"GET /page.js":            s.asset("page/page.js", "text/javascript; charset=utf-8"),
		"GET /api/status":         s.handleStatus,
		"GET /api/events":         s.handleEvents,
		"POST /api/login":         s.handleLogin,
		"PUT /api/bundle":         s.handleUpload,
		"POST /api/factory-reset": s.handleFactoryReset,
		"POST /api/reboot":        s.handleReboot,
	}
	s.handler = s.guard(http.HandlerFunc(s.route))
	return s, nil
}

// route finds the handler by method and exact path. A map of nine routes
// instead of http.ServeMux: the mux's pattern language costs 15 kB of the
// rescue binary and is not needed here.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	if h, ok := s.routes[r.Method+" "+r.URL.Path]; ok {
		h(w, r)
		return
	}
	for k := range s.routes {
		if strings.HasSuffix(k, " "+r.URL.Path) {
			writeError(w, http.StatusMethodNotAllowed, r.Method+" "+r.URL.Path+": method not allowed")
			return
		}
	}
	writeError(w, http.StatusNotFound, r.URL.Path+": not found")
}

// Code is the one-time code that opens the page ("" with a password). The
// rescue prints it on its console (Announce does); the page never shows
// it.
func (s *Server) Code() string { return s.code }

// Handler is the page and its API, for a server of the caller's own.
func (s *Server) Handler() http.Handler { return s.handler }

// Start listens on addr (":80") and serves in the background until Close
// or until ctx ends.
func (s *Server) Start(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("webui: %w", err)
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		// No ReadTimeout or WriteTimeout: an upload and an event stream
		// last as long as they need; a stalled upload is ended by
		// StallTimeout, a stalled page by a deadline on each write.
	}
	s.srvMu.Lock()
	s.srv, s.ln = srv, ln
	s.srvMu.Unlock()
	go srv.Serve(ln)
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.ctx.Done():
		}
	}()
	return nil
}

// Addr is where Start listens.
func (s *Server) Addr() net.Addr {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Close stops serving, cancels a running install or reset (through the
// context the Device got) and waits for it to return.
func (s *Server) Close() error {
	s.cancel()
	s.srvMu.Lock()
	srv := s.srv
	s.srvMu.Unlock()
	var err error
	if srv != nil {
		err = srv.Close()
	}
	s.jobs.Wait()
	return err
}

// Announce prints on the console how to open the page: its URL at each of
// addrs and at the mDNS name (when not empty), and the one-time code. The
// rescue calls it once the network is up, and again whenever the lines
// should be repeated (after a failed attempt, say).
func (s *Server) Announce(addrs []netip.Addr, mdnsName string) {
	port := "" // the URLs leave out port 80
	if a, ok := s.Addr().(*net.TCPAddr); ok && a.Port != 80 {
		port = ":" + strconv.Itoa(a.Port)
	}
	var urls []string
	for _, a := range addrs {
		h := a.String()
		if a.Is6() && !a.Is4In6() {
			h = "[" + a.WithZone("").String() + "]"
		}
		urls = append(urls, "http://"+h+port+"/")
	}
	if mdnsName != "" {
		urls = append(urls, "http://"+strings.TrimSuffix(mdnsName, ".")+port+"/")
	}
	if len(urls) == 0 {
		s.cfg.Logf("web: recovery page served, but the board has no address yet")
	} else {
		s.cfg.Logf("web: recovery page at %s", strings.Join(urls, " or "))
	}
	if s.code != "" {
		s.cfg.Logf("web: access code %s (type it on the page; a new one at every boot)", s.code)
	} else {
		s.cfg.Logf("web: the board's password opens the page")
	}
}

// StatusChanged tells the pages to read the Device's Status again. The
// rescue calls it when its activity, reason or last error changes.
func (s *Server) StatusChanged() {
	s.hub.publishJSON("status", s.statusMsg("status", false), keepNot)
}

// Observe shows an install the rescue runs on its own (from a network
// source or a USB stick) on the pages; it is an install.Observer. An
// install's start event starts a new display.
func (s *Server) Observe(e install.Event) {
	s.mu.Lock()
	inJob := s.busy
	s.mu.Unlock()
	if inJob {
		// The page's own install reports through its job observer.
		return
	}
	keep := keepFor(e.Type)
	if e.Type == install.EventStart {
		keep = keepNewStart
	}
	s.publishEvent(e, keep)
}

func keepFor(kind string) int {
	if kind == install.EventProgress {
		return keepLatest
	}
	return keepEvent
}

func (s *Server) publishEvent(e install.Event, keep int) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	s.hub.publishJSON(e.Type, e, keep)
}

// job is an install, factory reset or reboot started from the page.
type job struct {
	Kind     string `json:"kind"`  // jobInstall, jobReset, jobReboot
	State    string `json:"state"` // running, done, failed
	From     string `json:"from,omitempty"`
	Size     int64  `json:"size,omitempty"`     // the upload's announced size, -1 unknown
	Received int64  `json:"received,omitempty"` // bytes of the upload received
	Product  string `json:"product,omitempty"`  // of the bundle
	Version  string `json:"version,omitempty"`  //
	Error    string `json:"error,omitempty"`    // why it failed, on one line
	ExitCode int    `json:"exit_code,omitempty"`
	Cut      bool   `json:"cut,omitempty"` // the upload's connection dropped
}

const (
	jobInstall = "install"
	jobReset   = "factory-reset"
	jobReboot  = "reboot"

	stateRunning = "running"
	stateDone    = "done"
	stateFailed  = "failed"
)

// errBusy is a second job while one runs.
type errBusy struct{ j job }

func (e errBusy) Error() string {
	what := "a bundle is being installed"
	switch e.j.Kind {
	case jobReset:
		what = "a factory reset is running"
	case jobReboot:
		what = "the device is rebooting"
	}
	if e.j.From != "" {
		what += " (" + e.j.From + ")"
	}
	return what + "; try again when it has finished"
}

// begin starts a job, or says which one runs.
func (s *Server) begin(j job) error {
	s.mu.Lock()
	if s.busy {
		err := errBusy{*s.job}
		s.mu.Unlock()
		return err
	}
	j.State = stateRunning
	s.busy, s.job = true, &j
	s.jobs.Add(1)
	s.mu.Unlock()
	s.hub.publishJSON("job", jobMsg(j), keepNewStart)
	s.StatusChanged()
	return nil
}

// end finishes the running job with err.
func (s *Server) end(err error, cut bool) job {
	s.mu.Lock()
	j := s.job
	j.State = stateDone
	if err != nil {
		j.State, j.Error, j.ExitCode, j.Cut = stateFailed, oneLine(err.Error()), install.ExitCode(err), cut
	}
	s.busy = j.Kind == jobReboot && err == nil // a reboot never ends
	out := *j
	s.mu.Unlock()
	s.hub.publishJSON("job", jobMsg(out), keepEvent)
	s.StatusChanged()
	s.jobs.Done()
	return out
}

func jobMsg(j job) any {
	return struct {
		Event string `json:"event"`
		job
	}{"job", j}
}

// jobObserver passes the Device's events to the pages. Its error events
// are left out: the job ends with one made from the error the Device
// returns, so the page says exactly what the console says.
func (s *Server) jobObserver() install.Observer {
	return func(e install.Event) {
		switch {
		case e.Type == install.EventError:
			return
		case e.Start != nil:
			s.mu.Lock()
			s.job.Product, s.job.Version = e.Start.Product, e.Start.Version
			s.mu.Unlock()
		}
		s.publishEvent(e, keepFor(e.Type))
	}
}

// failJob ends the job with err, sending the pages an install error event
// first.
func (s *Server) failJob(err error, cut bool) job {
	e := install.ErrorEvent(err)
	e.Error.Reason = oneLine(e.Error.Reason)
	s.publishEvent(e, keepEvent)
	return s.end(err, cut)
}

// statusMsg is the page's view of the device.
func (s *Server) statusMsg(kind string, authorized bool) any {
	st := s.cfg.Device.Status()
	s.mu.Lock()
	var j *job
	if s.job != nil {
		c := *s.job
		j = &c
		if s.busy {
			st.Activity = activity(c)
		}
	}
	s.mu.Unlock()
	type msg struct {
		Event      string `json:"event"`
		Status     Status `json:"status"`
		Job        *job   `json:"job"`
		Authorized *bool  `json:"authorized,omitempty"`
		Password   bool   `json:"password"`
	}
	m := msg{Event: kind, Status: st, Job: j, Password: s.secret.password != nil}
	if kind == "hello" {
		m.Authorized = &authorized
	}
	return m
}

func activity(j job) string {
	switch j.Kind {
	case jobReset:
		return "factory reset: wiping the state partitions"
	case jobReboot:
		return "rebooting"
	}
	return "installing the bundle uploaded " + j.From
}

// oneLine keeps a reason on one line, as the console does.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

// guard checks every request before the handlers: the host it names, and
// for requests that change something, that they come from the page
// itself. It also sets the headers that keep the page from being framed
// or loading anything from elsewhere.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		if !s.hostAllowed(r.Host) {
			s.refused("web: refused %s %s from %s: unknown host name %q", r.Method, r.URL.Path, hostOf(r.RemoteAddr), r.Host)
			writeError(w, http.StatusMisdirectedRequest, "open the page by the device's address or its .local name, not by "+r.Host)
			return
		}
		if err := s.cop.Check(r); err != nil {
			s.refused("web: refused a cross-origin %s %s from %s (Origin %q)", r.Method, r.URL.Path, hostOf(r.RemoteAddr), r.Header.Get("Origin"))
			writeError(w, http.StatusForbidden, "cross-origin request refused: use the device's own page")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// refusedEvery is the least time between two console lines about refused
// requests: a web page that makes a browser send them by the thousand must
// not flood a serial console.
const refusedEvery = 10 * time.Second

// refused prints a line about a refused request, unless one was printed
// less than refusedEvery ago; the next line then says how many were not.
func (s *Server) refused(format string, args ...any) {
	s.refusedMu.Lock()
	now := time.Now()
	if !s.refusedAt.IsZero() && now.Sub(s.refusedAt) < refusedEvery {
		s.refusedQuiet++
		s.refusedMu.Unlock()
		return
	}
	n := s.refusedQuiet
	s.refusedAt, s.refusedQuiet = now, 0
	s.refusedMu.Unlock()
	if n > 0 {
		format += fmt.Sprintf(" (and %d more refused before)", n)
	}
	s.cfg.Logf(format, args...)
}

// hostAllowed reports whether the Host header names the device: an IP
// address, localhost, a .local name or one of Config.Hosts.
func (s *Server) hostAllowed(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	if host == "localhost" || strings.HasSuffix(host, ".local") {
		return true
	}
	for _, h := range s.cfg.Hosts {
		if strings.EqualFold(strings.TrimSuffix(h, "."), host) {
			return true
		}
	}
	return false
}

func (s *Server) asset(name, ctype string) http.HandlerFunc {
	b, err := pageFS.ReadFile(name)
	if err != nil {
		panic(err) // embedded at build time: a missing file is a build error
	}
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ctype)
		w.Write(b)
	}
}

// writeJSON answers with v.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// apiError is every refusal's body.
type apiError struct {
	Error      string `json:"error"`
	ExitCode   int    `json:"exit_code,omitempty"`
	Cut        bool   `json:"cut,omitempty"`
	RetryAfter int    `json:"retry_after,omitempty"` // seconds
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, apiError{Error: msg})
}

// signedIn reports whether r carries a live session.
func (s *Server) signedIn(r *http.Request) bool {
	c, err := r.Cookie(SessionCookie)
	return err == nil && s.sessions.valid(c.Value)
}

const msgSignIn = "sign in first: type the code shown on the device's console"

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.statusMsg("hello", s.signedIn(r)))
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Code string `json:"code"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4<<10)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "sign-in: want a JSON object with \"code\"")
		return
	}
	client := hostOf(r.RemoteAddr)
	key := clientKey(r.RemoteAddr)
	word := "code"
	if s.secret.password != nil {
		word = "password"
	}

	s.loginMu.Lock()
	defer s.loginMu.Unlock()
	if d := s.limiter.wait(key); d > 0 {
		secs := seconds(d)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeJSON(w, http.StatusTooManyRequests, apiError{
			Error:      fmt.Sprintf("too many wrong %ss: try again in %d s", word, secs),
			RetryAfter: secs,
		})
		return
	}
	if !s.secret.check(req.Code) {
		d := s.limiter.fail(key)
		s.cfg.Logf("web: wrong %s from %s", word, client)
		msg := fmt.Sprintf("wrong %s", word)
		if s.secret.password == nil {
			msg += ": type the code shown on the device's console"
		}
		e := apiError{Error: msg}
		if d > 0 {
			e.RetryAfter = seconds(d)
			e.Error += fmt.Sprintf(" (next try in %d s)", e.RetryAfter)
			w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
		}
		writeJSON(w, http.StatusForbidden, e)
		return
	}
	s.limiter.success(key)
	tok, err := s.sessions.create()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "sign-in: "+err.Error())
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: tok, Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
		MaxAge: int(SessionLifetime / time.Second),
	})
	s.cfg.Logf("web: %s signed in", client)
	writeJSON(w, http.StatusOK, struct {
		OK bool `json:"ok"`
	}{true})
}

func seconds(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }

// hostOf is the address part of a RemoteAddr.
func hostOf(remote string) string {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap().String()
	}
	return remote
}

func (s *Server) handleFactoryReset(w http.ResponseWriter, r *http.Request) {
	if !s.signedIn(r) {
		writeError(w, http.StatusUnauthorized, msgSignIn)
		return
	}
	var req struct {
		Confirm bool `json:"confirm"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4<<10)).Decode(&req); err != nil || !req.Confirm {
		writeError(w, http.StatusBadRequest, `factory reset: not confirmed (want {"confirm": true})`)
		return
	}
	from := "from " + hostOf(r.RemoteAddr)
	if err := s.begin(job{Kind: jobReset, From: from}); err != nil {
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	s.cfg.Logf("web: factory reset asked %s", from)
	err := s.cfg.Device.FactoryReset(s.ctx, s.jobObserver())
	if err != nil {
		j := s.failJob(err, false)
		code := http.StatusInternalServerError
		if errors.Is(err, ErrBusy) {
			code = http.StatusConflict
		}
		writeJSON(w, code, apiError{Error: j.Error, ExitCode: j.ExitCode})
		return
	}
	s.end(nil, false)
	writeJSON(w, http.StatusOK, struct {
		OK bool `json:"ok"`
	}{true})
}

func (s *Server) handleReboot(w http.ResponseWriter, r *http.Request) {
	if !s.signedIn(r) {
		writeError(w, http.StatusUnauthorized, msgSignIn)
		return
	}
	from := "from " + hostOf(r.RemoteAddr)
	if err := s.begin(job{Kind: jobReboot, From: from}); err != nil {
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	s.cfg.Logf("web: reboot asked %s", from)
	writeJSON(w, http.StatusAccepted, struct {
		OK bool `json:"ok"`
	}{true})
	http.NewResponseController(w).Flush()
	// The answer is out before the board goes down. Reboot need not
	// return; when it does without an error, the board is on its way down
	// and the server stays busy.
	go func() {
		if err := s.cfg.Device.Reboot(); err != nil {
			s.failJob(fmt.Errorf("reboot: %w", err), false)
			return
		}
		s.end(nil, false)
	}()
}
