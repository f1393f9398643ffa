package install

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ReadSecurityVersion reads the device's security version from path: a
// decimal number. A missing file means 0, a device that never recorded
// one. A file that does not hold a number is an error: guessing would
// either let a rollback through or lock the device out of every update.
func ReadSecurityVersion(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("security version: %w", err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: security version file %s does not hold a number: %q", ErrRollback, path, strings.TrimSpace(string(b)))
	}
	return v, nil
}

// WriteSecurityVersion records v in path, atomically: a power cut leaves
// the old value or the new one, never a torn file.
func WriteSecurityVersion(path string, v uint64) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("security version: %w", err)
	}
	f, err := os.CreateTemp(dir, ".security-version-*")
	if err != nil {
		return fmt.Errorf("security version: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := fmt.Fprintf(f, "%d\n", v); err != nil {
		f.Close()
		return fmt.Errorf("security version: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("security version: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("security version: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("security version: %w", err)
	}
	// The rename is durable only once the directory is.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
