package bundletool

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/lifeboat-updater/lifeboat/exitcode"
)

// specHead is the start of the specs below; their own lines start at 6.
const specHead = `product: demo
version: 1.0.0
compatible: [qemu-x86_64]
chunk_size: 64KiB
steps:
`

// TestCreateRefuses lists specs that could never be installed, or that
// do not mean what they seem to: create must refuse each before reading an
// image, in one line naming the spec file and the line at fault, with
// exit code 2.
func TestCreateRefuses(t *testing.T) {
	d := setup(t)
	if err := syscall.Mkfifo(filepath.Join(d, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, steps string
		line        int
		text        string
	}{
		// Sizes and numbers.
		{"octal size", "  - type: partition\n    target: disk\n    partitions:\n      - {name: a, type: linux, size: 010MiB}\n", 9, `size "010MiB": a leading zero`},
		{"size 1iB", "  - type: partition\n    target: disk\n    partitions:\n      - {name: a, type: linux, size: 1iB}\n", 9, `unit "iB"`},
		{"negative size", "  - type: partition\n    target: disk\n    partitions:\n      - {name: a, type: linux, size: -1}\n", 9, `size "-1"`},
		{"hex offset", "  - {type: image, file: boot.img, target: boot, offset: 0x100}\n", 6, `size "0x100"`},
		{"size as a list", "  - {type: image, file: boot.img, target: boot, offset: [1]}\n", 6, "want a single value"},
		{"empty size", "  - {type: image, file: boot.img, target: boot, offset: }\n", 6, "no value"},
		// YAML itself.
		{"syntax", "  - {type: wipe, target: data}\n  - type: wipe target: x: y\n", 7, "mapping values are not allowed"},
		{"unknown field", "  - {type: image, file: boot.img, target: boot, ofset: 4096}\n", 6, `unknown field "ofset"`},
		{"two type errors", "  - {type: [image], target: [boot]}\n", 6, "(and 1 more)"},
		{"duplicate key", "  - {type: image, type: wipe, target: boot}\n", 6, `"type" already defined`},
		{"second document", "  - {type: wipe, target: data}\n---\nproduct: other\n", 7, "second YAML document"},
		// Steps.
		{"unknown step type", "  - {type: wipe, target: data}\n  - {type: format, target: data}\n", 7, "step 2: unknown type format"},
		{"no target", "  - {type: wipe}\n", 6, "no target"},
		{"wipe mode", "  - {type: wipe, target: data, mode: shred}\n", 6, "wipe mode shred"},
		{"image file missing", "  - {type: image, file: nope.img, target: boot}\n", 6, "no such file"},
		{"image file a directory", "  - {type: image, file: ., target: boot}\n", 6, "not a regular file"},
		{"image file a FIFO", "  - {type: image, file: fifo, target: boot}\n", 6, "not a regular file"},
		{"image file a character device", "  - {type: image, file: /dev/zero, target: boot}\n", 6, "not a regular file"},
		{"table on a wipe", "  - {type: wipe, target: data, table: gpt}\n", 6, "table does not apply to a wipe step"},
		{"offset on a wipe", "  - {type: wipe, target: data, offset: 1MiB}\n", 6, "offset does not apply"},
		{"empty top-level key", "  - {type: wipe, target: data}\ndescription:\n", 7, "description: no value"},
		{"image written twice", "  - {type: image, file: boot.img, target: boot}\n  - {type: image, image: boot, file: root.img, target: boot}\n", 7, "written by step 1 too"},
		// Partition tables.
		{"unknown table type", "  - type: partition\n    target: disk\n    table: apm\n    partitions:\n      - {name: a, type: linux}\n", 6, "table type apm"},
		{"unknown partition type", "  - type: partition\n    target: disk\n    partitions:\n      - {name: a, type: linux, size: 1MiB}\n      - {name: b, type: ext4}\n", 10, "partition 2 b: type ext4"},
		{"duplicate partition name", "  - type: partition\n    target: disk\n    partitions:\n      - {name: a, type: linux, size: 1MiB}\n      - {name: a, type: linux}\n", 10, "the name of partition 1 too"},
		{"overlapping partitions", "  - type: partition\n    target: disk\n    partitions:\n      - {name: a, type: linux, start: 1MiB, size: 2MiB}\n      - {name: b, type: linux, start: 2MiB, size: 1MiB}\n", 10, "overlaps partition 1"},
		{"rest of disk first", "  - type: partition\n    target: disk\n    partitions:\n      - {name: a, type: linux}\n      - {name: b, type: linux}\n", 9, "last partition only"},
		{"unaligned start", "  - type: partition\n    target: disk\n    partitions:\n      - {name: a, type: linux, start: 1000, size: 1MiB}\n", 9, "not a multiple of 512"},
		{"octal attributes", "  - type: partition\n    target: disk\n    partitions:\n      - {name: a, type: linux, attributes: 010}\n", 9, "leading zero"},
		{"five MBR partitions", "  - type: partition\n    target: disk\n    table: mbr\n    partitions:\n" + strings.Repeat("      - {name: p, type: linux, size: 1MiB}\n", 5), 6, "holds 4"},
		{"image larger than its partition", "  - type: partition\n    target: disk\n    partitions:\n      - {name: boot, type: linux, size: 128KiB}\n      - {name: rootfs, type: linux}\n  - {type: image, file: boot.img, target: boot}\n", 11, "does not fit partition boot"},
		// Env steps.
		{"env: = in a name", "  - type: env\n    target: bootenv\n    set:\n      a=b: x\n", 9, `variable a=b: the name holds '='`},
		{"env: newline in a name", "  - type: env\n    target: bootenv\n    set:\n      \"a\\nb\": x\n", 9, `variable "a\nb": the name holds a line break`},
		{"env: NUL in a value", "  - type: env\n    target: bootenv\n    set:\n      x: \"a\\0b\"\n", 9, "NUL"},
		{"env: NUL in a name", "  - type: env\n    target: bootenv\n    unset: [\"a\\0\"]\n", 8, "NUL"},
		{"env: empty name", "  - type: env\n    target: bootenv\n    set:\n      \"\": x\n", 9, "empty name"},
		{"env: comment name", "  - type: env\n    target: bootenv\n    set:\n      \"#x\": \"1\"\n", 9, "comment"},
		{"env: no value", "  - type: env\n    target: bootenv\n    set:\n      bootcount:\n", 9, "no value"},
		{"env: set twice", "  - type: env\n    target: bootenv\n    set:\n      a: \"1\"\n      a: \"2\"\n", 10, "set twice"},
		{"env: set and unset", "  - type: env\n    target: bootenv\n    set: {a: \"1\"}\n    unset: [a]\n", 9, "both set and unset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := filepath.Join(d, "s.yaml")
			if err := os.WriteFile(spec, []byte(specHead+tc.steps), 0o644); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "out.lfb")
			code, _, e := runTool(t, nil, "create", "-spec", spec, "-key", filepath.Join(d, "dev.key"), "-o", out)
			want := fmt.Sprintf("%s:%d: ", spec, tc.line)
			if code != exitcode.Usage || !strings.HasPrefix(e, "lifeboat-bundle: "+want) || !strings.Contains(e, tc.text) || strings.Count(e, "\n") != 1 {
				t.Errorf("create = %d, %q; want exit %d and one line starting %q mentioning %q", code, e, exitcode.Usage, want, tc.text)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("create wrote %s", out)
			}
		})
	}
}

// TestCreateGoodSpecs are specs that look odd but are fine.
func TestCreateGoodSpecs(t *testing.T) {
	d := setup(t)
	for _, tc := range []struct{ name, steps string }{
		{"newline in an env value", "  - type: env\n    target: bootenv\n    set:\n      bootcmd: \"run a\\nrun b\"\n      empty: \"\"\n"},
		{"numbers as env values", "  - {type: env, target: bootenv, set: {bootcount: 0, version: 1.10, id: 010}}\n"},
		{"explicit sizes", "  - type: partition\n    target: disk\n    table: mbr\n    guid: \"0x12345678\"\n    partitions:\n      - {name: boot, type: fat32, start: 1MiB, size: 1048576, bootable: true}\n      - {name: rootfs, type: \"0x83\"}\n  - {type: image, file: boot.img, target: boot, offset: 512B}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := filepath.Join(d, "s.yaml")
			os.WriteFile(spec, []byte(specHead+tc.steps), 0o644)
			if code, _, e := runTool(t, nil, "create", "-q", "-spec", spec, "-key", filepath.Join(d, "dev.key"), "-o", filepath.Join(d, "out.lfb")); code != 0 {
				t.Errorf("create = %d, %s", code, e)
			}
		})
	}
}

func TestSpecFileErrors(t *testing.T) {
	d := setup(t)
	key := filepath.Join(d, "dev.key")
	empty := filepath.Join(d, "empty.yaml")
	os.WriteFile(empty, nil, 0o644)
	unused := filepath.Join(d, "unused.yaml")
	os.WriteFile(unused, []byte(specHead+"  - {type: wipe, target: data}\nimages:\n  boot: boot.img\n"), 0o644)
	fifo := filepath.Join(d, "spec.fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	secver := filepath.Join(d, "secver.yaml")
	os.WriteFile(secver, []byte("security_version: 010\n"+specHead), 0o644)
	for _, tc := range []struct {
		name, spec, want string
	}{
		{"empty", empty, empty + ": empty spec"},
		{"a directory", d, d + ": not a regular file"},
		{"a FIFO", fifo, fifo + ": not a regular file"},
		{"unused image", unused, unused + ":8: image boot is listed but no step writes it"},
		{"octal security version", secver, secver + ":1: a leading zero"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, e := runTool(t, nil, "create", "-spec", tc.spec, "-key", key, "-o", filepath.Join(d, "out.lfb"))
			if code != exitcode.Usage || !strings.Contains(e, tc.want) || strings.Count(e, "\n") != 1 {
				t.Errorf("create = %d, %q; want %d and one line with %q", code, e, exitcode.Usage, tc.want)
			}
		})
	}
}
