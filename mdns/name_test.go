package mdns

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHostName(t *testing.T) {
	tests := []struct{ board, serial, want string }{
		{"qemu-x86_64", "52:54:00:12:34:56", "qemu-x86-64-52-54-00-12-34-56.local"},
		{"rpi4", "10000000abcdef01", "rpi4-10000000abcdef01.local"},
		{"Board", "SN 0042/B", "board-sn-0042-b.local"},
		{"board", "", "board.local"},
		{"--", "x", "lifeboat-x.local"},
		{strings.Repeat("b", 60), "serial-123", strings.Repeat("b", 52) + "-serial-123.local"},
		{"board", strings.Repeat("9", 50) + "end", "board-" + strings.Repeat("9", 50) + "end.local"},
		{strings.Repeat("b", 30), strings.Repeat("9", 50) + "end", strings.Repeat("b", 22) + "-" + strings.Repeat("9", 37) + "end.local"},
	}
	for _, tt := range tests {
		got := HostName(tt.board, tt.serial)
		if got != tt.want {
			t.Errorf("HostName(%q, %q) = %q, want %q", tt.board, tt.serial, got, tt.want)
		}
		if label := strings.TrimSuffix(got, ".local"); len(label) > 63 || !validName(got) {
			t.Errorf("HostName(%q, %q) = %q: label of %d bytes", tt.board, tt.serial, got, len(label))
		}
	}
}

func TestSerial(t *testing.T) {
	write := func(root, p, s string) {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"device tree", map[string]string{"proc/device-tree/serial-number": "10000000abcdef01\x00", "sys/class/dmi/id/product_serial": "PC-1"}, "10000000abcdef01"},
		{"dmi", map[string]string{"sys/class/dmi/id/product_serial": "PC-1\n"}, "PC-1"},
		{"dmi placeholder, board serial", map[string]string{"sys/class/dmi/id/product_serial": "To Be Filled By O.E.M.\n", "sys/class/dmi/id/board_serial": "MB-7\n"}, "MB-7"},
		{"zeros", map[string]string{"sys/firmware/devicetree/base/serial-number": "0000000000000000\x00"}, ""},
		{"none", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for p, s := range tt.files {
				write(root, p, s)
			}
			if got := Serial(root); got != tt.want {
				t.Errorf("Serial() = %q, want %q", got, tt.want)
			}
		})
	}
}
