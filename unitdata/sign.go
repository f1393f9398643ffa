package unitdata

import (
	"crypto/ed25519"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/lifeboat-updater/lifeboat/bundle"
)

// signedPrefix separates unit data signatures from every other use of a
// key: a station signature can never be a bundle manifest signature (whose
// prefix is "lifeboat bundle manifest v1\n"), and the other way round.
const signedPrefix = "lifeboat unit data v1\n"

// MaxSigned bounds a signed unit data document.
const MaxSigned = 1 << 20

// Signed is the document a station hands a unit: the exact bytes of a Data
// (base64 in JSON) and signatures over them.
type Signed struct {
	Data       []byte             `json:"data"`
	Signatures []bundle.Signature `json:"signatures"`
}

func message(data []byte) []byte { return append([]byte(signedPrefix), data...) }

// Sign encodes d and signs it with each signer.
func Sign(d *Data, signers ...bundle.Signer) ([]byte, error) {
	if len(signers) == 0 {
		return nil, fmt.Errorf("unitdata: no signer")
	}
	data, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	s := Signed{Data: data}
	for _, sg := range signers {
		v, err := sg.Sign(message(data))
		if err != nil {
			return nil, fmt.Errorf("unitdata: signing with key %s: %w", sg.KeyID(), err)
		}
		s.Signatures = append(s.Signatures, bundle.Signature{KeyID: sg.KeyID(), Algorithm: sg.Algorithm(), Value: v})
	}
	return json.Marshal(s)
}

// Verify checks the signatures of a signed document against the station
// trust store and only then parses the data. It returns the data and the
// ids of the keys whose signatures verified. As for bundles, signatures by
// unknown keys are ignored and a trusted key's signature that does not
// verify is an error.
func Verify(signed []byte, stations *bundle.TrustStore) (*Data, []string, error) {
	if len(signed) > MaxSigned {
		return nil, nil, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformed, len(signed), MaxSigned)
	}
	var s Signed
	if err := json.Unmarshal(signed, &s); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	msg := message(s.Data)
	var good, unknown []string
	for _, sig := range s.Signatures {
		k, ok := stations.PublicKey(sig.KeyID)
		if !ok || sig.Algorithm != bundle.AlgEd25519 {
			unknown = append(unknown, sig.KeyID)
			continue
		}
		if !ed25519.Verify(k, msg, sig.Value) {
			return nil, nil, fmt.Errorf("%w: key %s", ErrSignature, sig.KeyID)
		}
		good = append(good, sig.KeyID)
	}
	if len(good) == 0 {
		var trusted []string
		if stations != nil {
			trusted = stations.KeyIDs()
		}
		return nil, nil, fmt.Errorf("%w: signed by [%s], trusted station keys are [%s]", ErrUntrusted, strings.Join(unknown, " "), strings.Join(trusted, " "))
	}
	var d Data
	dec := json.NewDecoder(strings.NewReader(string(s.Data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return nil, nil, fmt.Errorf("%w: data: %v", ErrMalformed, err)
	}
	if d.Format != FormatVersion {
		return nil, nil, fmt.Errorf("%w: format %d, want %d", ErrMalformed, d.Format, FormatVersion)
	}
	return &d, good, nil
}

// Station keys are Ed25519 keys in the same PEM files as bundle keys, with
// the header "Lifeboat-Key-Usage: unit-data" that makes them station keys.

// MarshalPrivateKey encodes a station private key as PEM (PKCS #8) marked
// for unit data.
func MarshalPrivateKey(k ed25519.PrivateKey) ([]byte, error) {
	return mark(bundle.MarshalPrivateKey(k))
}

// MarshalPublicKey encodes a station public key as PEM (PKIX) marked for
// unit data.
func MarshalPublicKey(k ed25519.PublicKey) ([]byte, error) { return mark(bundle.MarshalPublicKey(k)) }

func mark(b []byte, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	blk.Headers = map[string]string{bundle.KeyUsageHeader: bundle.KeyUsageUnitData}
	return pem.EncodeToMemory(blk), nil
}

func checkMarked(b []byte) error {
	if u := bundle.KeyUsage(b); u != bundle.KeyUsageUnitData {
		return fmt.Errorf("%w: the PEM block has no %q header (a bundle key is not a station key unless the trust store marks it so)",
			ErrKeyUsage, bundle.KeyUsageHeader+": "+bundle.KeyUsageUnitData)
	}
	return nil
}

// ParsePrivateKey decodes a station private key; it must be marked for
// unit data.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	if err := checkMarked(b); err != nil {
		return nil, err
	}
	return bundle.ParsePrivateKey(b)
}

// LoadTrustStore reads the station trust store: PEM public keys from files,
// or from every *.pub file of a directory (/etc/lifeboat/station-keys in
// the rescue). Every key must be marked for unit data: a bundle key copied
// there by mistake is refused.
func LoadTrustStore(paths ...string) (*bundle.TrustStore, error) {
	var keys []ed25519.PublicKey
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("unitdata: station trust store: %w", err)
		}
		files := []string{p}
		if fi.IsDir() {
			if files, err = filepath.Glob(filepath.Join(p, "*.pub")); err != nil {
				return nil, err
			}
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("unitdata: station trust store: %w", err)
			}
			k, err := bundle.ParsePublicKey(b)
			if err == nil {
				err = checkMarked(b)
			}
			if err != nil {
				return nil, fmt.Errorf("unitdata: station trust store %s: %w", f, err)
			}
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("unitdata: station trust store %s holds no keys", strings.Join(paths, ", "))
	}
	return bundle.NewTrustStore(keys...), nil
}
