package source

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// fakeClock is a device clock that starts where the test says.
type fakeClock struct {
	mu   sync.Mutex
	now  time.Time
	at   time.Time // real time when now was set
	sets []time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{now: t, at: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now.Add(time.Since(c.at))
}

func (c *fakeClock) Set(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now, c.at = t, time.Now()
	c.sets = append(c.sets, t)
	return nil
}

func (c *fakeClock) setCalls() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.sets...)
}

// testPKI is a CA and a server certificate for 127.0.0.1 valid from
// notBefore for a day, as a freshly issued certificate would be.
type testPKI struct {
	caFile string
	cert   tls.Certificate
}

func newPKI(t *testing.T, notBefore time.Time) *testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Lifeboat test CA"},
		NotBefore:             notBefore.Add(-time.Hour),
		NotAfter:              notBefore.Add(10 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    notBefore,
		NotAfter:     notBefore.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "board-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	return &testPKI{caFile: caFile, cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}
}

// tlsServer serves body over TLS and counts requests by method.
func (p *testPKI) server(t *testing.T, body []byte) (*httptest.Server, func() map[string]int) {
	var mu sync.Mutex
	counts := map[string]int{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		counts[r.Method]++
		mu.Unlock()
		http.ServeContent(w, r, "b.lfb", time.Time{}, bytes.NewReader(body))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{p.cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		out := map[string]int{}
		for k, v := range counts {
			out[k] = v
		}
		return out
	}
}

func near(a, b time.Time) bool { d := a.Sub(b); return d > -time.Minute && d < time.Minute }

func TestTLSClockFloor(t *testing.T) {
	now := time.Now()
	issued := now.Add(-time.Hour) // the certificate is an hour old
	epoch := time.Date(1970, 1, 1, 0, 0, 5, 0, time.UTC)
	pki := newPKI(t, issued)
	body := content(50_000, 20)

	for _, tt := range []struct {
		name      string
		clock     time.Time // the device's clock at boot
		floor     time.Time // the build time
		wantErr   error
		wantSets  []time.Time // Set calls, each within a minute
		wantProbe bool        // the Date header was read
	}{
		{
			name:      "1970 clock, build older than the certificate: server date",
			clock:     epoch,
			floor:     issued.Add(-30 * 24 * time.Hour),
			wantSets:  []time.Time{issued.Add(-30 * 24 * time.Hour), now},
			wantProbe: true,
		},
		{
			name:     "1970 clock, build newer than the certificate: floor alone",
			clock:    epoch,
			floor:    issued.Add(30 * time.Minute),
			wantSets: []time.Time{issued.Add(30 * time.Minute)},
		},
		{
			name:  "correct clock: nothing moves",
			clock: now,
			floor: issued.Add(-30 * 24 * time.Hour),
		},
		{
			name:      "clock ahead of the certificate: never set backward",
			clock:     now.Add(10 * 365 * 24 * time.Hour),
			wantErr:   ErrTLS,
			wantProbe: true,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, counts := pki.server(t, body)
			clock := newFakeClock(tt.clock)
			var log logSink
			c, err := NewClient(ClientConfig{RootsFile: "/nonexistent", ExtraRoots: []string{pki.caFile},
				Clock: clock, Floor: tt.floor, Logf: log.logf})
			if err != nil {
				t.Fatal(err)
			}
			h := &HTTP{URL: srv.URL + "/b.lfb", Client: c, Retry: fastRetry}
			got, _, err := readAll(t, h)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("download = %v, want %v (log %q)", err, tt.wantErr, log.lines)
			}
			if err == nil && !bytes.Equal(got, body) {
				t.Errorf("download gave %d bytes, want the %d served", len(got), len(body))
			}
			sets := clock.setCalls()
			if len(sets) != len(tt.wantSets) {
				t.Fatalf("clock set %d times (%v), want %d (%v)", len(sets), sets, len(tt.wantSets), tt.wantSets)
			}
			for i := range sets {
				if !near(sets[i], tt.wantSets[i]) {
					t.Errorf("clock set #%d to %v, want about %v", i, sets[i], tt.wantSets[i])
				}
				if i > 0 && sets[i].Before(sets[i-1]) {
					t.Errorf("clock set backward: %v after %v", sets[i], sets[i-1])
				}
			}
			if probed := counts()[http.MethodHead] > 0; probed != tt.wantProbe {
				t.Errorf("Date probe made = %v, want %v", probed, tt.wantProbe)
			}
			wantNow := tt.clock
			if len(tt.wantSets) > 0 {
				wantNow = tt.wantSets[len(tt.wantSets)-1]
			}
			if !near(c.Now(), wantNow) {
				t.Errorf("Client.Now() = %v, want about %v", c.Now(), wantNow)
			}
		})
	}
}

// TestTLSFloorWithoutSettableClock: when the system clock cannot be set,
// the client still checks certificates against the corrected time.
func TestTLSFloorWithoutSettableClock(t *testing.T) {
	pki := newPKI(t, time.Now().Add(-time.Hour))
	srv, _ := pki.server(t, []byte("bundle"))
	clock := &stuckClock{t: time.Unix(0, 0)}
	c, err := NewClient(ClientConfig{ExtraRoots: []string{pki.caFile}, RootsFile: "/nonexistent", Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := readAll(t, &HTTP{URL: srv.URL, Client: c, Retry: fastRetry})
	if err != nil || string(got) != "bundle" {
		t.Errorf("download = %q, %v, want %q", got, err, "bundle")
	}
}

type stuckClock struct{ t time.Time }

func (c *stuckClock) Now() time.Time      { return c.t }
func (c *stuckClock) Set(time.Time) error { return errors.New("read-only clock") }

func TestTLSUntrusted(t *testing.T) {
	pki := newPKI(t, time.Now().Add(-time.Hour))
	other := newPKI(t, time.Now().Add(-time.Hour))
	srv, counts := pki.server(t, []byte("bundle"))

	c, err := NewClient(ClientConfig{ExtraRoots: []string{other.caFile}, RootsFile: "/nonexistent"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = (&HTTP{URL: srv.URL, Client: c, Retry: fastRetry}).Open(context.Background())
	if !errors.Is(err, ErrTLS) {
		t.Errorf("Open() with another CA = %v, want ErrTLS", err)
	}
	if n := counts()[http.MethodHead]; n != 0 {
		t.Errorf("%d Date probes for an unknown CA, want none", n)
	}

	// No roots at all: HTTPS fails with a message naming the roots file.
	c, err = NewClient(ClientConfig{RootsFile: "/nonexistent/ca.crt"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = (&HTTP{URL: srv.URL, Client: c, Retry: fastRetry}).Open(context.Background())
	if !errors.Is(err, ErrTLS) {
		t.Errorf("Open() without roots = %v, want ErrTLS", err)
	}

	// A roots file that is not PEM is a configuration error.
	bad := filepath.Join(t.TempDir(), "bad.pem")
	os.WriteFile(bad, []byte("not a certificate"), 0o644)
	if _, err := NewClient(ClientConfig{ExtraRoots: []string{bad}}); err == nil {
		t.Error("NewClient() with a non-PEM roots file = nil error")
	}
}

func TestTLSRootsFromRootsFile(t *testing.T) {
	pki := newPKI(t, time.Now().Add(-time.Hour))
	srv, _ := pki.server(t, []byte("bundle"))
	c, err := NewClient(ClientConfig{RootsFile: pki.caFile})
	if err != nil {
		t.Fatal(err)
	}
	st, err := (&HTTP{URL: srv.URL, Client: c}).Open(context.Background())
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	defer st.Close()
	if b, _ := io.ReadAll(st); string(b) != "bundle" {
		t.Errorf("read %q, want %q", b, "bundle")
	}
}

func TestParseBuildTime(t *testing.T) {
	for in, want := range map[string]time.Time{
		"":                     {},
		"1764100000":           time.Unix(1764100000, 0).UTC(),
		"2025-11-25T20:55:00Z": time.Date(2025, 11, 25, 20, 55, 0, 0, time.UTC),
	} {
		got, err := ParseBuildTime(in)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseBuildTime(%q) = %v, %v, want %v", in, got, err, want)
		}
	}
	if _, err := ParseBuildTime("yesterday"); err == nil {
		t.Error(`ParseBuildTime("yesterday") = nil error`)
	}
}

func TestBuildTimeIsAFloor(t *testing.T) {
	old := BuildTime
	t.Cleanup(func() { BuildTime = old })
	BuildTime = "2025-11-25T20:55:00Z"
	clock := newFakeClock(time.Unix(0, 0))
	if _, err := NewClient(ClientConfig{Clock: clock, Floor: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	want := time.Date(2025, 11, 25, 20, 55, 0, 0, time.UTC)
	if sets := clock.setCalls(); len(sets) != 1 || !sets[0].Equal(want) {
		t.Errorf("clock set to %v, want [%v] (the later of BuildTime and Floor)", sets, want)
	}
}
