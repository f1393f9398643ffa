package partitions

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/lifeboat-updater/lifeboat/bundle"
)

// Preferred display names, so String is stable where several aliases
// share one code.
var (
	gptNames = map[string]string{}
	mbrNames = map[byte]string{0x83: "linux", 0xef: "esp", 0x82: "swap", 0x0c: "fat32", 0x0e: "fat16",
		0x8e: "linux-lvm", 0xfd: "linux-raid", 0xe8: "linux-luks", 0xea: "linux-xbootldr"}
)

func init() {
	for _, name := range []string{"linux", "esp", "bios-boot", "swap", "linux-home", "linux-srv",
		"linux-var", "linux-tmp", "linux-lvm", "linux-raid", "linux-luks", "linux-xbootldr",
		"linux-root-x86", "linux-root-x86-64", "linux-root-arm", "linux-root-arm64",
		"linux-root-riscv64", "basic-data"} {
		g, err := bundle.GPTPartitionType(name)
		if err != nil {
			panic(err) // the names above are the bundle format's aliases
		}
		gptNames[g] = name
	}
}

// gptType resolves a bundle's type for a GPT entry to a lower-case type
// GUID. The aliases are the bundle format's (bundle.GPTPartitionType).
func gptType(s string) (string, error) {
	g, err := bundle.GPTPartitionType(s)
	if err != nil {
		return "", fmt.Errorf("%w %q: %v", ErrBadType, s, err)
	}
	return g, nil
}

// mbrType resolves a bundle's type for an MBR entry to its type byte.
func mbrType(s string) (byte, error) {
	b, err := bundle.MBRPartitionType(s)
	if err != nil {
		return 0, fmt.Errorf("%w %q: %v", ErrBadType, s, err)
	}
	return b, nil
}

func mbrTypeString(b byte) string { return fmt.Sprintf("0x%02x", b) }

// typeName is how String shows a resolved type: alias and code.
func typeName(tableType, typ string) string {
	if tableType == "gpt" {
		if n, ok := gptNames[typ]; ok {
			return n
		}
		return typ
	}
	if v, err := strconv.ParseUint(strings.TrimPrefix(typ, "0x"), 16, 8); err == nil {
		if n, ok := mbrNames[byte(v)]; ok {
			return n + " (" + typ + ")"
		}
	}
	return typ
}
