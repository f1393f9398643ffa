package vm

import (
	"errors"
	"strings"
	"testing"
)

func TestArgsDiskBoot(t *testing.T) {
	args, err := Options{DiskBoot: true, Drives: []Drive{{Path: "/d.img"}}}.Args("")
	if err != nil {
		t.Fatalf("Args(DiskBoot) = %v", err)
	}
	got := strings.Join(args, " ")
	if strings.Contains(got, "-kernel") || strings.Contains(got, "-append") || !strings.Contains(got, "file=/d.img") {
		t.Errorf("Args(DiskBoot) = %s, want the disk and no -kernel or -append", got)
	}
	if _, err := (Options{DiskBoot: true, Kernel: "/k"}).Args(""); !errors.Is(err, ErrNoKernel) {
		t.Errorf("Args(DiskBoot with a kernel) = %v, want ErrNoKernel", err)
	}
	if _, err := (Options{}).Args(""); !errors.Is(err, ErrNoKernel) {
		t.Errorf("Args(no kernel) = %v, want ErrNoKernel", err)
	}
}
