package bundletool

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/lifeboat-updater/lifeboat/bundle"
)

// FuzzParseSize: a size it takes is digits without a leading zero and a
// unit of the list, and means digits times the unit.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "4096", "64KiB", "1M", "2GiB", "16T", "010MiB", "1iB", "0x10", "1e6", "-1", "18446744073709551615", "16777216TiB"} {
		f.Add(s)
	}
	ok := regexp.MustCompile(`^(0|[1-9][0-9]*)(|B|K|KiB|M|MiB|G|GiB|T|TiB)$`)
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseSize(s)
		if err != nil {
			return
		}
		m := ok.FindStringSubmatch(s)
		if m == nil {
			t.Fatalf("ParseSize(%q) = %d, a size it should refuse", s, v)
		}
		n, err := strconv.ParseUint(m[1], 10, 64)
		if err != nil || v != n*sizeUnits[m[2]] || (n != 0 && v/n != sizeUnits[m[2]]) {
			t.Fatalf("ParseSize(%q) = %d", s, v)
		}
	})
}

// FuzzSpec feeds arbitrary specs to create's checks, up to where images
// would be read: every error is a *SpecError, and a spec they take makes
// a manifest a device takes.
func FuzzSpec(f *testing.F) {
	f.Add(testSpec)
	f.Add(specHead + "  - {type: env, target: bootenv, set: {a: \"x\\ny\"}, unset: [b]}\n")
	f.Add(specHead + "  - type: partition\n    target: disk\n    table: mbr\n    partitions:\n      - {name: a, type: \"0x83\", start: 1MiB, size: 1MiB}\n      - {name: b, type: linux}\n")
	f.Add("a: &x [*x]\n")
	f.Add("product: x\n---\nproduct: y\n")
	f.Fuzz(func(t *testing.T, spec string) {
		d := t.TempDir()
		os.WriteFile(filepath.Join(d, "boot.img"), []byte("boot"), 0o644)
		os.WriteFile(filepath.Join(d, "root.img"), make([]byte, 70000), 0o644)
		path := filepath.Join(d, "s.yaml")
		if err := os.WriteFile(path, []byte(spec), 0o644); err != nil {
			t.Fatal(err)
		}
		var se *SpecError
		s, err := LoadSpec(path)
		if err != nil {
			if !errors.As(err, &se) {
				t.Fatalf("LoadSpec = %v (%T), want a *SpecError", err, err)
			}
			return
		}
		m, imgs, err := s.Manifest()
		if err == nil {
			cs := uint64(s.ChunkSize)
			if cs == 0 {
				cs = bundle.DefaultChunkSize
			}
			err = s.Check(m, imgs, cs)
		}
		if err != nil {
			if !errors.As(err, &se) || !strings.HasPrefix(err.Error(), path) {
				t.Fatalf("error %v (%T), want a *SpecError naming the spec", err, err)
			}
			return
		}
		for _, st := range m.Steps {
			if st.Target == "" {
				t.Fatalf("step %+v taken without a target", st)
			}
		}
	})
}
