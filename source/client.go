package source

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// DefaultRootsFile is where the rescue image (and Debian) keeps CA roots.
const DefaultRootsFile = "/etc/ssl/certs/ca-certificates.crt"

// ClientConfig configures a Client.
type ClientConfig struct {
	// RootsFile is a PEM file of CA roots; DefaultRootsFile when empty.
	// A missing file is not an error if ExtraRoots gives some roots.
	RootsFile string
	// ExtraRoots are more PEM files, such as the board maker's own CA.
	ExtraRoots []string

	// Clock is the clock certificates are checked against. Nil keeps any
	// correction inside the process; the rescue passes SystemClock{} so
	// that the system clock is set forward too.
	Clock Clock
	// Floor is a time the clock is known to be past; the later of Floor
	// and BuildTime is used. The clock is moved forward to it at once.
	Floor time.Time

	// DialTimeout bounds a TCP connect and a TLS handshake; 15 s when zero.
	DialTimeout time.Duration
	// HeaderTimeout bounds the wait for response headers; 30 s when zero.
	HeaderTimeout time.Duration

	// Logf, if not nil, receives a line when the clock is moved.
	Logf func(format string, args ...any)
}

// Client is an HTTP(S) client for bundle downloads. It trusts only the
// configured roots, and it copes with a device whose clock is far behind:
// when a certificate is refused as "not yet valid" (or expired) it reads
// the server's Date header over an unverified connection, moves the clock
// forward to it (never backward), and tries again, verifying normally.
//
// Trusting an unauthenticated Date only ever moves the clock forward: a
// forged date in the future can make valid certificates look expired (a
// denial of service, which anyone on the path can cause anyway), but can
// never make an expired certificate acceptable.
type Client struct {
	hc    *http.Client
	probe *http.Client // unverified, only to read the Date header
	clock *floorClock
	roots error // why no roots were loaded, or nil
	logf  func(format string, args ...any)
}

// NewClient returns a Client; it moves the clock forward to the floor.
func NewClient(cfg ClientConfig) (*Client, error) {
	c := &Client{logf: cfg.Logf}
	if c.logf == nil {
		c.logf = func(string, ...any) {}
	}
	base := cfg.Clock
	if base == nil {
		base = processClock{}
	}
	c.clock = &floorClock{base: base}

	pool, err := loadRoots(cfg.RootsFile, cfg.ExtraRoots)
	if err != nil {
		return nil, err
	}
	if pool == nil {
		c.roots = fmt.Errorf("no CA roots in %s", rootsFile(cfg.RootsFile))
		pool = x509.NewCertPool()
	}

	floor := cfg.Floor
	if bt, err := ParseBuildTime(BuildTime); err == nil && bt.After(floor) {
		floor = bt
	}
	before := c.clock.Now()
	if moved, err := c.clock.raise(floor); moved {
		c.logf("source: clock %s is before the build floor; now %s", before.UTC().Format(time.RFC3339), floor.UTC().Format(time.RFC3339))
		if err != nil {
			c.logf("source: %v", err)
		}
	}

	dial, hdr := cfg.DialTimeout, cfg.HeaderTimeout
	if dial <= 0 {
		dial = 15 * time.Second
	}
	if hdr <= 0 {
		hdr = 30 * time.Second
	}
	transport := func(tc *tls.Config) *http.Transport {
		return &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: dial, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       tc,
			TLSHandshakeTimeout:   dial,
			ResponseHeaderTimeout: hdr,
			ForceAttemptHTTP2:     true,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
		}
	}
	c.hc = &http.Client{Transport: transport(&tls.Config{RootCAs: pool, Time: c.clock.Now})}
	c.probe = &http.Client{
		Transport: transport(&tls.Config{InsecureSkipVerify: true}),
		Timeout:   dial + hdr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return c, nil
}

func rootsFile(p string) string {
	if p == "" {
		return DefaultRootsFile
	}
	return p
}

// loadRoots reads the PEM files; it returns nil without error when none of
// them holds a certificate (a device that only fetches plain HTTP).
func loadRoots(file string, extra []string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	b, err := os.ReadFile(rootsFile(file))
	switch {
	case err == nil:
		if pool.AppendCertsFromPEM(b) {
			n++
		}
	case !errors.Is(err, os.ErrNotExist):
		// A missing file only means no roots from it (an image that
		// carries only the board's CA); an unreadable one is a fault.
		return nil, fmt.Errorf("source: CA roots: %w", err)
	}
	for _, f := range extra {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("source: CA roots: %w", err)
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("source: CA roots: no PEM certificate in %s", f)
		}
		n++
	}
	if n == 0 {
		return nil, nil
	}
	return pool, nil
}

// Now returns the clock the client checks certificates against.
func (c *Client) Now() time.Time { return c.clock.Now() }

// Do sends req like http.Client.Do. For HTTPS, a certificate refused
// because of the date triggers one clock correction and one retry; any
// other verification failure is returned wrapped in ErrTLS. req must have
// no body (bundle downloads are GET and HEAD).
func (c *Client) Do(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "https" && c.roots != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrTLS, req.URL.Host, c.roots)
	}
	resp, err := c.hc.Do(req)
	if err == nil || !certTimeError(err) {
		return resp, tlsError(err)
	}
	date, derr := c.serverDate(req.Context(), req.URL.String())
	if derr != nil {
		c.logf("source: reading the date from %s: %v", req.URL.Host, derr)
		return nil, tlsError(err)
	}
	before := c.clock.Now()
	moved, serr := c.clock.raise(date)
	if !moved {
		return nil, tlsError(err)
	}
	c.logf("source: certificate of %s not valid at %s; clock set forward to the server's date %s",
		req.URL.Host, before.UTC().Format(time.RFC3339), date.UTC().Format(time.RFC3339))
	if serr != nil {
		c.logf("source: %v", serr)
	}
	resp, err = c.hc.Do(req.Clone(req.Context()))
	return resp, tlsError(err)
}

// serverDate reads the Date header of url without verifying the peer.
func (c *Client) serverDate(ctx context.Context, url string) (time.Time, error) {
	for _, m := range []string{http.MethodHead, http.MethodGet} {
		req, err := http.NewRequestWithContext(ctx, m, url, nil)
		if err != nil {
			return time.Time{}, err
		}
		if m == http.MethodGet {
			req.Header.Set("Range", "bytes=0-0")
		}
		resp, err := c.probe.Do(req)
		if err != nil {
			return time.Time{}, err
		}
		resp.Body.Close()
		if d := resp.Header.Get("Date"); d != "" {
			return http.ParseTime(d)
		}
	}
	return time.Time{}, errors.New("no Date header")
}

// certTimeError reports whether err is a certificate refused for its
// validity period, which a wrong clock explains.
func certTimeError(err error) bool {
	var inv x509.CertificateInvalidError
	return errors.As(err, &inv) && inv.Reason == x509.Expired
}

// tlsError wraps certificate verification failures in ErrTLS.
func tlsError(err error) error {
	if err == nil {
		return nil
	}
	var (
		verr *tls.CertificateVerificationError
		ua   x509.UnknownAuthorityError
		inv  x509.CertificateInvalidError
		host x509.HostnameError
	)
	if errors.As(err, &verr) || errors.As(err, &ua) || errors.As(err, &inv) || errors.As(err, &host) ||
		strings.Contains(err.Error(), "tls: failed to verify certificate") {
		return fmt.Errorf("%w: %w", ErrTLS, err)
	}
	return err
}
