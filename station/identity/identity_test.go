package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSerialRange(t *testing.T) {
	for _, tc := range []struct {
		r  SerialRange
		ok bool
	}{
		{SerialRange{"LB-%06d", 1, 999999}, true},
		{SerialRange{"%d", 0, 5}, true},
		{SerialRange{"SN%08X", 1, 2}, true},
		{SerialRange{"LB-%06d-%d", 1, 2}, false},
		{SerialRange{"LB-%s", 1, 2}, false},
		{SerialRange{"LB", 1, 2}, false},
		{SerialRange{"LB %d", 1, 2}, false},   // space
		{SerialRange{"LB/%d", 1, 2}, false},   // path separator
		{SerialRange{"LB-%06d", 5, 4}, false}, // empty
		{SerialRange{"%070d", 1, 2}, false},   // too long
		{SerialRange{"100%%-%d", 1, 2}, false},
	} {
		if err := tc.r.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v.Validate() = %v, want ok %v", tc.r, err, tc.ok)
		}
	}
	if got := (SerialRange{"LB-%06d", 1, 9}).Serial(42); got != "LB-000042" {
		t.Errorf("Serial(42) = %q", got)
	}
}

func TestMACPool(t *testing.T) {
	p, err := ParseMACPool("02:00:00:00:10:00 - 02:00:00:00:10:05", 2)
	if err != nil {
		t.Fatal(err)
	}
	if p.Units() != 3 {
		t.Errorf("Units() = %d, want 3", p.Units())
	}
	if diff := cmp.Diff([]string{"02:00:00:00:10:04", "02:00:00:00:10:05"}, p.Block(2)); diff != "" {
		t.Errorf("Block(2) mismatch (-want +got):\n%s", diff)
	}
	for _, bad := range []struct {
		s string
		n int
	}{
		{"02:00:00:00:10:00", 1},
		{"02:00:00:00:10:05-02:00:00:00:10:00", 1},
		{"03:00:00:00:00:00-03:00:00:00:00:ff", 1}, // multicast
		{"02:00:00:00:00:00-04:00:00:00:00:00", 1}, // crosses first octets
		{"02:00:00:00:00:00-02:00:00:00:00:ff", 0},
		{"zz-02:00:00:00:00:ff", 1},
	} {
		if _, err := ParseMACPool(bad.s, bad.n); err == nil {
			t.Errorf("ParseMACPool(%q, %d) = nil error", bad.s, bad.n)
		}
	}
}

func TestIssue(t *testing.T) {
	dir := t.TempDir()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "CA", Organization: []string{"Acme"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	kder, _ := x509.MarshalECPrivateKey(k)
	os.WriteFile(filepath.Join(dir, "ca.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(filepath.Join(dir, "ca.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	ca, err := LoadCA(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key"), 0)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue("LB-000001", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode([]byte(certPEM))
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("unit certificate does not verify against the CA: %v", err)
	}
	if cert.Subject.CommonName != "LB-000001" || cert.Subject.SerialNumber != "LB-000001" || cert.Subject.Organization[0] != "Acme" {
		t.Errorf("subject %v", cert.Subject)
	}
	kb, _ := pem.Decode([]byte(keyPEM))
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil || !key.(*ecdsa.PrivateKey).PublicKey.Equal(cert.PublicKey) {
		t.Errorf("the key does not match the certificate: %v", err)
	}
	// A leaf certificate is not a CA.
	os.WriteFile(filepath.Join(dir, "leaf.crt"), []byte(certPEM), 0o644)
	if _, err := LoadCA(filepath.Join(dir, "leaf.crt"), filepath.Join(dir, "ca.key"), 0); err == nil {
		t.Errorf("LoadCA(a leaf certificate) = nil error")
	}
}
