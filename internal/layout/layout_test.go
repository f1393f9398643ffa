package layout

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/lifeboat-updater/lifeboat/"

// TestDesignPicture holds every package's imports (not its tests') against
// the floors of docs/design.md.
func TestDesignPicture(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "..", "docs", "design.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	floors, err := Parse(f)
	if err != nil {
		t.Fatalf("docs/design.md: %v", err)
	}
	cmd := exec.Command("go", "list", "-json", "./...")
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	n := 0
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkg := strings.TrimPrefix(p.ImportPath, module)
		if _, _, ok := floors.Place(pkg); !ok {
			t.Errorf("package %s is on no floor of docs/design.md", pkg)
			continue
		}
		n++
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			if err := floors.Check(pkg, strings.TrimPrefix(imp, module)); err != nil {
				t.Errorf("docs/design.md: %v", err)
			}
		}
	}
	if n < 20 {
		t.Errorf("checked %d packages; go list found too few", n)
	}
}

func TestCheck(t *testing.T) {
	floors, err := Parse(strings.NewReader("x\n```floors\n3: cmd\n2: install handlers/extra\n1: bundle handlers\n```\n"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		pkg, imp string
		ok       bool
	}{
		{"install", "bundle", true},
		{"install", "handlers/mtd", true},
		{"handlers/mtd", "handlers", true}, // same folder
		{"handlers", "install", false},
		{"bundle", "handlers", false}, // same floor
		{"handlers/extra", "handlers", true},
		{"cmd/lifeboat", "install", true},
		{"nowhere", "bundle", false},
	}
	for _, tt := range tests {
		if err := floors.Check(tt.pkg, tt.imp); (err == nil) != tt.ok {
			t.Errorf("Check(%s, %s) = %v, want ok %v", tt.pkg, tt.imp, err, tt.ok)
		}
	}
	for _, bad := range []string{"no block", "```floors\n```", "```floors\nx: a\n```", "```floors\n1: a\n2: a\n```"} {
		if _, err := Parse(strings.NewReader(bad)); err == nil {
			t.Errorf("Parse(%q) = nil error", bad)
		}
	}
}
