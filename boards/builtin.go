package boards

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

// The profiles of the boards the project ships, one <name>.json each.
//
//go:embed *.json
var builtin embed.FS

// Builtin returns the built-in profile called name ("qemu-x86_64").
func Builtin(name string) (*Profile, error) {
	b, err := builtin.ReadFile(name + ".json")
	if err != nil || strings.ContainsAny(name, "/\\") {
		return nil, fmt.Errorf("%w %q (built in: %s)", ErrUnknownBoard, name, strings.Join(BuiltinNames(), ", "))
	}
	p, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("built-in profile %s: %w", name, err)
	}
	return p, nil
}

// BuiltinNames lists the built-in profiles, sorted.
func BuiltinNames() []string {
	ms, _ := fs.Glob(builtin, "*.json")
	var ns []string
	for _, m := range ms {
		ns = append(ns, strings.TrimSuffix(m, ".json"))
	}
	sort.Strings(ns)
	return ns
}
