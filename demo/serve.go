package demo

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// GuestHost is how a QEMU guest with user-mode networking reaches the
// host's loopback interface.
const GuestHost = "10.0.2.2"

// Request is one request the Server answered.
type Request struct {
	Time   time.Time
	Method string
	Path   string
	Range  string // the Range header, if any
	Status int
	Bytes  int64 // body bytes sent
	Err    error // why the body was cut short, if it was
}

// Server serves files over HTTP on the host's loopback interface, as a
// factory line's or an update server would, and logs each request. Its
// knobs let a test stand for a slow or failing network.
type Server struct {
	// BytesPerSecond, if not zero, limits each response body's rate.
	BytesPerSecond int64
	// Hook, if set, is called before each request is served; a non-nil
	// error answers 503 instead (a server that is down).
	Hook func(r *http.Request) error
	// CutAfter, if set, is asked for each response: a positive n ends the
	// connection after n body bytes (a dropped connection).
	CutAfter func(r *http.Request) int64
	// StallAfter, if set, is asked for each response: a positive n stops
	// the body after n bytes and holds the connection open, sending
	// nothing, until the client goes away or the server closes (a server
	// or network that hangs).
	StallAfter func(r *http.Request) int64

	dir string
	ln  net.Listener
	srv *http.Server

	mu       sync.Mutex
	requests []Request
}

// Serve serves the files of dir on 127.0.0.1 at a free port.
func Serve(dir string) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, ln: ln}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Port is the port the server listens on.
func (s *Server) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// URL is the address of name on the server, as the host reaches it.
func (s *Server) URL(name string) string {
	return fmt.Sprintf("http://127.0.0.1:%d/%s", s.Port(), name)
}

// GuestURL is the address of name as a QEMU guest with user-mode
// networking reaches it.
func (s *Server) GuestURL(name string) string {
	return fmt.Sprintf("http://%s:%d/%s", GuestHost, s.Port(), name)
}

// Requests returns the requests answered so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// ServeHTTP serves a file of the folder, with Range support.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := Request{Time: time.Now(), Method: r.Method, Path: r.URL.Path, Range: r.Header.Get("Range")}
	cw := &countingWriter{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		rec.Status, rec.Bytes, rec.Err = cw.status, cw.n, cw.err
		s.mu.Lock()
		s.requests = append(s.requests, rec)
		s.mu.Unlock()
	}()
	if s.Hook != nil {
		if err := s.Hook(r); err != nil {
			http.Error(cw, err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	name := filepath.Join(s.dir, filepath.FromSlash(filepath.Clean("/"+r.URL.Path)))
	f, err := os.Open(name)
	if err != nil {
		http.NotFound(cw, r)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		http.NotFound(cw, r)
		return
	}
	cw.rate = s.BytesPerSecond
	if s.CutAfter != nil {
		cw.cut = s.CutAfter(r)
	}
	if s.StallAfter != nil {
		cw.stall, cw.done = s.StallAfter(r), r.Context().Done()
	}
	http.ServeContent(cw, r, fi.Name(), fi.ModTime(), f)
}

// errCut and errStalled report a response the server cut or stalled on
// purpose.
var (
	errCut     = errors.New("demo: connection cut on purpose")
	errStalled = errors.New("demo: response stalled on purpose")
)

// countingWriter counts the body bytes, paces them, and cuts them off.
type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
	rate   int64
	cut    int64
	stall  int64
	done   <-chan struct{} // the request's end, for a stall
	err    error
	start  time.Time
}

func (c *countingWriter) WriteHeader(code int) {
	c.status = code
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.start.IsZero() {
		c.start = time.Now()
	}
	if c.cut > 0 && c.n+int64(len(p)) > c.cut {
		p = p[:c.cut-c.n]
		n, _ := c.ResponseWriter.Write(p)
		c.n += int64(n)
		c.err = errCut
		if f, ok := c.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		// Panicking with ErrAbortHandler is how a handler drops the
		// connection without a proper end of the body.
		panic(http.ErrAbortHandler)
	}
	if c.stall > 0 && c.n+int64(len(p)) > c.stall {
		n, _ := c.ResponseWriter.Write(p[:c.stall-c.n])
		c.n += int64(n)
		if f, ok := c.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		<-c.done
		c.err = errStalled
		return n, errStalled
	}
	written := 0
	for len(p) > 0 {
		k := len(p)
		if c.rate > 0 && k > 16<<10 {
			k = 16 << 10
		}
		n, err := c.ResponseWriter.Write(p[:k])
		written += n
		c.n += int64(n)
		if err != nil {
			c.err = err
			return written, err
		}
		p = p[k:]
		if c.rate > 0 {
			due := c.start.Add(time.Duration(float64(c.n) / float64(c.rate) * float64(time.Second)))
			time.Sleep(time.Until(due))
		}
	}
	return written, nil
}

// ReadFrom keeps io.Copy from going around Write's pacing and counting.
func (c *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	return io.CopyBuffer(struct{ io.Writer }{c}, r, make([]byte, 32<<10))
}

// String summarizes a request for logs.
func (r Request) String() string {
	s := r.Method + " " + r.Path
	if r.Range != "" {
		s += " (" + r.Range + ")"
	}
	s += ": " + strconv.Itoa(r.Status) + ", " + strconv.FormatInt(r.Bytes, 10) + " bytes"
	if r.Err != nil {
		s += ", " + r.Err.Error()
	}
	return s
}
