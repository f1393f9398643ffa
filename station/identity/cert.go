package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"time"
)

// CA is the factory CA that signs units' certificates.
type CA struct {
	Cert *x509.Certificate
	PEM  string // the certificate, as given to units
	Key  crypto.Signer
	// Validity of the certificates it issues.
	Validity time.Duration
}

// LoadCA reads a CA certificate and its private key (PEM, PKCS #8 or EC).
func LoadCA(certFile, keyFile string, validity time.Duration) (*CA, error) {
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("factory CA: %w", err)
	}
	blk, _ := pem.Decode(cb)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("factory CA %s: no PEM CERTIFICATE block", certFile)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("factory CA %s: %w", certFile, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("factory CA %s: the certificate is not a CA", certFile)
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("factory CA key: %w", err)
	}
	kblk, _ := pem.Decode(kb)
	if kblk == nil {
		return nil, fmt.Errorf("factory CA key %s: no PEM block", keyFile)
	}
	var key any
	switch kblk.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(kblk.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(kblk.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("factory CA key %s: %w", keyFile, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("factory CA key %s: cannot sign", keyFile)
	}
	if validity <= 0 {
		validity = 20 * 365 * 24 * time.Hour
	}
	return &CA{Cert: cert, PEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})), Key: signer, Validity: validity}, nil
}

// Issue makes a unit's key pair (ECDSA P-256) and a certificate for it
// naming the serial, signed by the CA. It returns both as PEM.
func (ca *CA) Issue(serial string, now time.Time) (certPEM, keyPEM string, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	sn, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: serial, SerialNumber: serial, Organization: ca.Cert.Subject.Organization},
		NotBefore:    now.Add(-time.Hour), // a board's clock may run a little behind
		NotAfter:     now.Add(ca.Validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &k.PublicKey, ca.Key)
	if err != nil {
		return "", "", fmt.Errorf("issuing certificate for %s: %w", serial, err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return "", "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})), nil
}
