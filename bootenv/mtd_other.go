//go:build !linux

package bootenv

import (
	"errors"
	"os"
)

// MTD is an MTD character device; it exists only on Linux.
type MTD struct{ Medium }

// OpenMTD fails: MTD devices are a Linux interface.
func OpenMTD(path string) (*MTD, error) {
	return nil, &os.PathError{Op: "open MTD", Path: path, Err: errors.ErrUnsupported}
}

// Close does nothing.
func (m *MTD) Close() error { return nil }
