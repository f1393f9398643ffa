package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLinksNoDeviceCode keeps the host tool free of device code: making
// and checking bundles on a build server needs no handlers, partition
// code or install engine, and none of their libraries.
func TestLinksNoDeviceCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{
		"github.com/lifeboat-updater/lifeboat/install",
		"github.com/lifeboat-updater/lifeboat/handlers",
		"github.com/lifeboat-updater/lifeboat/partitions",
		"github.com/lifeboat-updater/lifeboat/bootenv",
		"github.com/lifeboat-updater/lifeboat/rescue",
		"github.com/diskfs/go-diskfs",
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if pkg == f || strings.HasPrefix(pkg, f+"/") {
				t.Errorf("lifeboat-bundle links %s", pkg)
			}
		}
	}
}
