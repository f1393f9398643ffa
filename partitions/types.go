package partitions

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// gptAliases maps the type names a bundle may use to GPT partition type
// GUIDs (UEFI specification and the Discoverable Partitions
// Specification). The first alias of a GUID in gptAliasOrder is the one
// String prints.
var gptAliases = map[string]string{
	"linux":              "0fc63daf-8483-4772-8e79-3d69d8477de4",
	"esp":                "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
	"efi":                "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
	"bios-boot":          "21686148-6449-6e6f-744e-656564454649",
	"swap":               "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f",
	"linux-home":         "933ac7e1-2eb4-4f13-b844-0e14e2aef915",
	"linux-srv":          "3b8f8425-20e0-4f3b-907f-1a25a76f98e8",
	"linux-var":          "4d21b016-b534-45c2-a9fb-5c16e091fd2d",
	"linux-tmp":          "7ec6f557-3bc5-4aca-b293-16ef5df639d1",
	"linux-lvm":          "e6d6d379-f507-44c2-a23c-238f2a3df928",
	"linux-raid":         "a19d880f-05fc-4d3b-a006-743f0f84911e",
	"linux-luks":         "ca7d7ccb-63ed-4c53-861c-1742536059cc",
	"linux-xbootldr":     "bc13c2ff-59e6-4262-a352-b275fd6f7172",
	"linux-root-x86":     "44479540-f297-41b2-9af7-d131d5f0458a",
	"linux-root-x86-64":  "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
	"linux-root-arm":     "69dad710-2ce4-4e3c-b16c-21a1d49abed3",
	"linux-root-arm64":   "b921b045-1df0-41c3-af44-4c6f280d3fae",
	"linux-root-riscv64": "72ec70a6-cf74-40e6-bd49-4bda08e8f224",
	"basic-data":         "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7",
	"fat":                "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7",
	"fat32":              "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7",
}

// mbrAliases maps the same names to MBR partition type bytes. Linux
// filesystems of any role are 0x83 on an MBR: it has no finer codes.
var mbrAliases = map[string]byte{
	"linux":              0x83,
	"linux-home":         0x83,
	"linux-srv":          0x83,
	"linux-var":          0x83,
	"linux-tmp":          0x83,
	"linux-root-x86":     0x83,
	"linux-root-x86-64":  0x83,
	"linux-root-arm":     0x83,
	"linux-root-arm64":   0x83,
	"linux-root-riscv64": 0x83,
	"esp":                0xef,
	"efi":                0xef,
	"swap":               0x82,
	"linux-lvm":          0x8e,
	"linux-raid":         0xfd,
	"linux-luks":         0xe8,
	"linux-xbootldr":     0xea,
	"basic-data":         0x0c,
	"fat":                0x0c,
	"fat32":              0x0c,
	"fat16":              0x0e,
}

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
		gptNames[gptAliases[name]] = name
	}
}

// gptType resolves a bundle's type for a GPT entry to a lower-case type
// GUID.
func gptType(s string) (string, error) {
	if g, ok := gptAliases[strings.ToLower(s)]; ok {
		return g, nil
	}
	u, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return "", fmt.Errorf("%w %q: want an alias (linux, esp, bios-boot, swap, linux-home, ...) or a type GUID", ErrBadType, s)
	}
	if u == uuid.Nil {
		return "", fmt.Errorf("%w %q: the nil GUID marks an unused entry", ErrBadType, s)
	}
	return u.String(), nil
}

// mbrType resolves a bundle's type for an MBR entry to its type byte.
func mbrType(s string) (byte, error) {
	if b, ok := mbrAliases[strings.ToLower(s)]; ok {
		return b, nil
	}
	h, ok := strings.CutPrefix(strings.ToLower(s), "0x")
	v, err := strconv.ParseUint(h, 16, 8)
	if !ok || err != nil || h == "" {
		if _, ok := gptAliases[strings.ToLower(s)]; ok {
			return 0, fmt.Errorf("%w %q: no MBR equivalent", ErrBadType, s)
		}
		return 0, fmt.Errorf("%w %q: want an alias (linux, esp, swap, fat32, ...) or a type byte like \"0x83\"", ErrBadType, s)
	}
	switch v {
	case 0x00:
		return 0, fmt.Errorf("%w %q: type 0 marks an unused entry", ErrBadType, s)
	case 0x05, 0x0f, 0x85:
		return 0, fmt.Errorf("%w %q: extended partitions are not supported", ErrBadType, s)
	case 0xee:
		return 0, fmt.Errorf("%w %q: 0xee is the GPT protective entry; use a gpt table", ErrBadType, s)
	}
	return byte(v), nil
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
