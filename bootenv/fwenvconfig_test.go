package bootenv

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseFWEnvConfig(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Config
	}{
		{
			name: "single file",
			in:   "/boot/uboot.env 0x0000 0x4000\n",
			want: Config{Type: UBoot, Size: 0x4000, Copies: []Location{{Path: "/boot/uboot.env"}}},
		},
		{
			name: "redundant NOR with comments",
			in: "# MTD device name\tDevice offset\tEnv. size\tFlash sector size\tNumber of sectors\n" +
				"\n" +
				"/dev/mtd1\t\t0x0000\t\t0x4000\t\t0x10000\t\t\t1 # first\n" +
				"  # indented comment\n" +
				"/dev/mtd2\t\t0x0000\t\t4000\t\t10000\t\t\t1\n",
			want: Config{Type: UBoot, Size: 0x4000, Copies: []Location{
				{Path: "/dev/mtd1", SectorSize: 0x10000, Sectors: 1},
				{Path: "/dev/mtd2", SectorSize: 0x10000, Sectors: 1},
			}},
		},
		{
			name: "decimal, octal and negative offsets",
			in:   "/dev/mmcblk0 4194304 0x2000\n/dev/mmcblk0 -0x2000 0x2000 0x200 0x10 1\n",
			want: Config{Type: UBoot, Size: 0x2000, Copies: []Location{
				{Path: "/dev/mmcblk0", Offset: 4194304},
				{Path: "/dev/mmcblk0", Offset: -0x2000, SectorSize: 0x200, Sectors: 0x10},
			}},
		},
		{
			name: "octal offset",
			in:   "/dev/sda 010 0x20\n",
			want: Config{Type: UBoot, Size: 0x20, Copies: []Location{{Path: "/dev/sda", Offset: 8}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFWEnvConfig(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("ParseFWEnvConfig() = %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseFWEnvConfig() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseFWEnvConfigErrors(t *testing.T) {
	tests := map[string]string{
		"empty":          "# nothing\n",
		"two fields":     "/dev/mtd0 0x0\n",
		"bad offset":     "/dev/mtd0 zero 0x4000\n",
		"double sign":    "/dev/mtd0 --4 0x4000\n",
		"bad size":       "/dev/mtd0 0 0x4g00\n",
		"zero size":      "/dev/mtd0 0 0\n",
		"unequal sizes":  "/dev/mtd0 0 0x4000\n/dev/mtd1 0 0x2000\n",
		"three copies":   "/a 0 0x40\n/b 0 0x40\n/c 0 0x40\n",
		"negative sizes": "/dev/mtd0 0 -0x4000\n",
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseFWEnvConfig(strings.NewReader(in)); !errors.Is(err, ErrConfig) {
				t.Errorf("ParseFWEnvConfig(%q) = %v, want ErrConfig", in, err)
			}
		})
	}
}
