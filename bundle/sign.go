package bundle

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// signedPrefix separates manifest signatures from every other use of a key.
const signedPrefix = "lifeboat bundle manifest v1\n"

// AlgEd25519 is the only signature algorithm of format version 1.
const AlgEd25519 = "ed25519"

// SignatureBlock follows the manifest. Several signatures may be present (a
// key rotation signs with the old and the new key); one from a trusted key
// is enough.
type SignatureBlock struct {
	Signatures []Signature `json:"signatures"`
}

// Signature is one signature over the manifest.
type Signature struct {
	KeyID     string `json:"key_id"`
	Algorithm string `json:"algorithm"`
	Value     []byte `json:"value"` // base64 in JSON
	// Certificates is room for an X.509 chain (DER, leaf first) for trust
	// stores that anchor in a CA instead of in raw keys. Format version 1
	// readers ignore it.
	Certificates [][]byte `json:"certificates,omitempty"`
}

// Signer signs manifests. Ed25519Signer is the implementation in this
// package; an HSM or a signing service can provide another.
type Signer interface {
	KeyID() string
	Algorithm() string
	Sign(message []byte) ([]byte, error)
}

// Ed25519Signer signs with an in-memory Ed25519 private key.
type Ed25519Signer struct{ Key ed25519.PrivateKey }

// KeyID implements Signer.
func (s Ed25519Signer) KeyID() string { return KeyID(s.Key.Public().(ed25519.PublicKey)) }

// Algorithm implements Signer.
func (s Ed25519Signer) Algorithm() string { return AlgEd25519 }

// Sign implements Signer.
func (s Ed25519Signer) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.Key, msg), nil }

// KeyID names a public key: the first 8 bytes of the SHA-256 of the raw key,
// in hex. It is what `lifeboat-bundle inspect` shows and what trust stores
// are searched by.
func KeyID(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:8])
}

func signedMessage(manifest []byte) []byte {
	return append([]byte(signedPrefix), manifest...)
}

func signManifest(manifest []byte, signers []Signer) ([]byte, error) {
	var blk SignatureBlock
	msg := signedMessage(manifest)
	for _, s := range signers {
		v, err := s.Sign(msg)
		if err != nil {
			return nil, fmt.Errorf("bundle: signing with key %s: %w", s.KeyID(), err)
		}
		blk.Signatures = append(blk.Signatures, Signature{KeyID: s.KeyID(), Algorithm: s.Algorithm(), Value: v})
	}
	return json.Marshal(blk)
}

// TrustStore holds the public keys a device accepts bundles from.
type TrustStore struct {
	keys map[string]ed25519.PublicKey
}

// NewTrustStore returns a trust store holding keys.
func NewTrustStore(keys ...ed25519.PublicKey) *TrustStore {
	t := &TrustStore{keys: map[string]ed25519.PublicKey{}}
	for _, k := range keys {
		t.keys[KeyID(k)] = k
	}
	return t
}

// KeyIDs lists the ids of the trusted keys, sorted.
func (t *TrustStore) KeyIDs() []string {
	var ids []string
	for id := range t.keys {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// LoadTrustStore reads public keys (PEM "PUBLIC KEY", as written by
// MarshalPublicKey) from files, or from every *.pub file of a directory.
func LoadTrustStore(paths ...string) (*TrustStore, error) {
	t := NewTrustStore()
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("bundle: trust store: %w", err)
		}
		files := []string{p}
		if fi.IsDir() {
			files, err = filepath.Glob(filepath.Join(p, "*.pub"))
			if err != nil {
				return nil, err
			}
		}
		for _, f := range files {
			b, err := ReadKeyFile(f)
			if err != nil {
				return nil, fmt.Errorf("bundle: trust store: %w", err)
			}
			k, err := ParsePublicKey(b)
			if err != nil {
				return nil, fmt.Errorf("bundle: trust store %s: %w", f, err)
			}
			t.keys[KeyID(k)] = k
		}
	}
	if len(t.keys) == 0 {
		return nil, fmt.Errorf("bundle: trust store %s holds no keys", strings.Join(paths, ", "))
	}
	return t, nil
}

// parseSignatureBlock decodes a signature block. It is not signed, so it
// is held to fixed bounds: one JSON object and nothing after it, no key
// twice, at most MaxSignatures signatures. Unknown fields are ignored
// (certificates, say, for a version 1 reader): nothing in the block can
// change what the signed manifest means.
func parseSignatureBlock(b []byte) (*SignatureBlock, error) {
	var blk SignatureBlock
	// A signature is a handful of values; its certificates a few more.
	if err := decodeStrict(b, &blk, 16*MaxSignatures, false); err != nil {
		return nil, fmt.Errorf("%w: signature block: %v", ErrFormat, err)
	}
	if len(blk.Signatures) > MaxSignatures {
		return nil, fmt.Errorf("%w: signature block holds %d signatures, at most %d", ErrFormat, len(blk.Signatures), MaxSignatures)
	}
	return &blk, nil
}

// verify checks the signature block against the manifest bytes and returns
// the ids of the trusted keys whose signatures verified. Signatures by keys
// the store does not hold are ignored; a signature by a trusted key that
// does not verify is an error even if another one does, because it means
// the manifest was altered or the block forged.
func (t *TrustStore) verify(manifest, sigBlock []byte) ([]string, error) {
	blk, err := parseSignatureBlock(sigBlock)
	if err != nil {
		return nil, err
	}
	if t == nil || len(t.keys) == 0 {
		return nil, fmt.Errorf("%w: the trust store is empty", ErrUnknownKey)
	}
	msg := signedMessage(manifest)
	var good, unknown []string
	for _, s := range blk.Signatures {
		k, ok := t.keys[s.KeyID]
		if !ok || s.Algorithm != AlgEd25519 {
			// The block is not signed: its key ids are shown escaped.
			unknown = append(unknown, Printable(clip(s.KeyID, 64)))
			continue
		}
		if !ed25519.Verify(k, msg, s.Value) {
			return nil, fmt.Errorf("%w: key %s", ErrSignature, s.KeyID)
		}
		good = append(good, s.KeyID)
	}
	if len(good) == 0 {
		return nil, fmt.Errorf("%w: signed by [%s], trusted are [%s]", ErrUnknownKey, strings.Join(unknown, " "), strings.Join(t.KeyIDs(), " "))
	}
	return good, nil
}

// maxKeyFile bounds a key file: a PEM Ed25519 key is about 120 bytes.
const maxKeyFile = 64 << 10

// ReadKeyFile reads a PEM key file: a regular file of at most 64 KiB, so
// that a path given by mistake (/dev/zero, a disk image) fails at once.
func ReadKeyFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxKeyFile {
		return nil, fmt.Errorf("%s: not a key file (a regular file of at most %d bytes)", path, maxKeyFile)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err == nil && len(b) > maxKeyFile {
		err = fmt.Errorf("%s: larger than %d bytes", path, maxKeyFile)
	}
	return b, err
}

// GenerateKey makes a new Ed25519 key pair.
func GenerateKey(random io.Reader) (ed25519.PublicKey, ed25519.PrivateKey, error) {
	if random == nil {
		random = rand.Reader
	}
	return ed25519.GenerateKey(random)
}

// MarshalPrivateKey encodes a private key as PEM (PKCS #8).
func MarshalPrivateKey(k ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// MarshalPublicKey encodes a public key as PEM (PKIX).
func MarshalPublicKey(k ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

var errNotEd25519 = errors.New("not an Ed25519 key")

// ParsePrivateKey decodes a PEM PKCS #8 Ed25519 private key.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("no PEM PRIVATE KEY block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errNotEd25519
	}
	return ek, nil
}

// ParsePublicKey decodes a PEM PKIX Ed25519 public key.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("no PEM PUBLIC KEY block")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, errNotEd25519
	}
	return ek, nil
}
