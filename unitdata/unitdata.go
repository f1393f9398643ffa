// Package unitdata is a factory unit's own data: the values a station
// fills in for one board (serial number, MAC addresses, a certificate and
// key), signed with the station's key. The device verifies the signature
// against its station trust store (never its bundle trust store), checks
// every value against the fields that the bundle's signed manifest
// declares (bundle.UnitField), and turns them into what to write:
// bootloader variables, file contents, raw bytes (Apply). The writing is
// the install engine's.
package unitdata

import (
	"errors"
	"time"
)

// FormatVersion is the unit data format this package reads and writes.
const FormatVersion = 1

// Errors. Compare with errors.Is; they are wrapped with the field, key or
// value that a person needs to see.
var (
	// ErrMalformed means the signed document or its data is not unit
	// data this package understands.
	ErrMalformed = errors.New("unitdata: malformed")
	// ErrUntrusted means no signature was made by a key of the station
	// trust store.
	ErrUntrusted = errors.New("unitdata: not signed by a trusted station key")
	// ErrSignature means a signature by a trusted station key does not
	// verify: the data was changed after it was signed.
	ErrSignature = errors.New("unitdata: signature does not verify")
	// ErrUndeclared means a value names a field that the bundle's
	// manifest does not declare, or a declared field has no value.
	ErrUndeclared = errors.New("unitdata: field not declared by the bundle")
	// ErrValue means a value breaks its field's declared format.
	ErrValue = errors.New("unitdata: value breaks its declared format")
	// ErrMismatch means the data was made for another bundle or another
	// board.
	ErrMismatch = errors.New("unitdata: made for another bundle or board")
	// ErrKeyUsage means a key offered as a station key is not marked for
	// unit data.
	ErrKeyUsage = errors.New("unitdata: not a station key")
)

// Hardware is what identifies a board: the ids the kernel shows. A field
// the board does not have is empty; at least one is set.
type Hardware struct {
	EMMCCID   string `json:"emmc_cid,omitempty"`   // /sys/block/mmcblkN/device/cid
	CPUSerial string `json:"cpu_serial,omitempty"` // /proc/cpuinfo "Serial", or the SoC's unique id
	MAC       string `json:"mac,omitempty"`        // of the interface the board booted from
}

// Key returns one string naming the board: its eMMC CID, else its CPU
// serial, else its MAC; "" when it has none. The most stable id comes
// first: a MAC is the first thing a factory changes.
func (h Hardware) Key() string {
	switch {
	case h.EMMCCID != "":
		return "cid:" + h.EMMCCID
	case h.CPUSerial != "":
		return "cpu:" + h.CPUSerial
	case h.MAC != "":
		return "mac:" + h.MAC
	}
	return ""
}

// BundleRef names the bundle the data was made for. IndexSHA256 is the
// signed manifest's hash of the chunk index: it changes with any image.
type BundleRef struct {
	Product     string `json:"product"`
	Version     string `json:"version"`
	IndexSHA256 string `json:"index_sha256"`
}

// Data is one unit's values, as a station signs them.
type Data struct {
	Format   int               `json:"format"`
	Station  string            `json:"station"` // which station issued it
	Serial   string            `json:"serial"`
	Hardware Hardware          `json:"hardware"` // the board it is for
	Bundle   BundleRef         `json:"bundle"`
	Issued   time.Time         `json:"issued"`
	Values   map[string]string `json:"values"` // field name -> value
}
