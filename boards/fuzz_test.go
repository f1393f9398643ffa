package boards

import (
	"os"
	"testing"
)

func FuzzParse(f *testing.F) {
	b, err := os.ReadFile("qemu-x86_64.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"name": "b", "storage": {"d": ["/dev/a", "/dev/b"]}, "targets": {"t": {"device": "d", "partition": "p"}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		// Whatever parses must validate, and resolving any name must
		// not panic.
		if err := p.Validate(); err != nil {
			t.Fatalf("Parse accepted a profile that Validate refuses: %v", err)
		}
		r := Resolver{SysRoot: t.TempDir(), DevRoot: "/nonexistent"}
		for n := range p.Targets {
			r.Resolve(p, n)
		}
	})
}
