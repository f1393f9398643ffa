package station

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-updater/lifeboat/station/client"
	"github.com/lifeboat-updater/lifeboat/station/stationtest"
)

// TestTLS serves the protocol over HTTPS: a unit that trusts the
// station's certificate goes through a whole run; one that does not is
// refused by TLS.
func TestTLS(t *testing.T) {
	f := stationtest.New(t)
	f.Bundle(t, "os.lfb", "1.0", []string{"qemu-x86_64"}, stationtest.UnitFields())
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "station"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	kder, _ := x509.MarshalPKCS8PrivateKey(k)
	os.WriteFile(filepath.Join(f.Dir, "https.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(filepath.Join(f.Dir, "https.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	st := start(t, f.Config(t, stationtest.Options{Bundles: []string{"os.lfb"}, Extra: "tls: {cert: https.crt, key: https.key}\n"}))
	if !strings.HasPrefix(st.URL(), "https://") {
		t.Fatalf("URL() = %s, want https", st.URL())
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	_, stt := trust(t, f)
	u := &stationtest.Unit{Board: "qemu-x86_64", Hardware: board(1), Stations: stt}
	r, err := u.Run(stationtest.Context(t), client.New(st.URL(), hc))
	if err != nil || r.Reply.Result != "pass" || r.Data.Serial != r.Identity.Serial {
		t.Fatalf("run over HTTPS: %+v, %v", r, err)
	}
	if _, err := client.New(st.URL(), nil).Identity(stationtest.Context(t), r.Announce.Run); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a unit without the station's certificate: %v, want a TLS refusal", err)
	}
}
