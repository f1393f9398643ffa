package install

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
)

// peakRSS is this process's peak resident memory in bytes (VmHWM of
// /proc/self/status), 0 where the kernel does not say. The install reports
// it in its done event and the rescue's summary: a board maker sizes the
// rescue's RAM from it, and a test reads it from there instead of asking a
// shell on the device.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	return parseVmHWM(b)
}

// parseVmHWM reads the "VmHWM:  1234 kB" line of a /proc/PID/status.
func parseVmHWM(status []byte) int64 {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		v, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmHWM:"))
		if !ok {
			continue
		}
		f := bytes.Fields(v)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0
		}
		n, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil || n < 0 {
			return 0
		}
		return n << 10
	}
	return 0
}
