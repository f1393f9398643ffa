package install

import (
	"runtime"
	"testing"
)

func TestParseVmHWM(t *testing.T) {
	tests := []struct {
		name, status string
		want         int64
	}{
		{"linux", "Name:\tlifeboat\nVmPeak:\t  20000 kB\nVmHWM:\t   19456 kB\nVmRSS:\t 1000 kB\n", 19456 << 10},
		{"missing", "Name:\tlifeboat\nVmRSS:\t 1000 kB\n", 0},
		{"no unit", "VmHWM:\t 12\n", 0},
		{"garbage", "VmHWM:\t x kB\n", 0},
		{"empty", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseVmHWM([]byte(tt.status)); got != tt.want {
				t.Errorf("parseVmHWM(%q) = %d, want %d", tt.status, got, tt.want)
			}
		})
	}
}

func TestPeakRSS(t *testing.T) {
	got := peakRSS()
	if runtime.GOOS == "linux" && got <= 0 {
		t.Errorf("peakRSS() = %d on Linux, want > 0", got)
	}
}
