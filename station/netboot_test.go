package station

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"

	"github.com/lifeboat-updater/lifeboat/internal/netnstest"
	"github.com/lifeboat-updater/lifeboat/station/protocol"
	"github.com/lifeboat-updater/lifeboat/station/stationtest"
)

// netLine is a line in network namespaces: the station's namespace with
// its line interface line0 (198.18.93.1/24) and a board's namespace with
// eth0, joined by a veth pair.
type netLine struct {
	station, board string
	cfg            string
}

func newNetLine(t *testing.T) (*netLine, *stationtest.Fixture) {
	l := &netLine{station: netnstest.New(t, "lbst-s"), board: netnstest.New(t, "lbst-b")}
	netnstest.Link(t, l.station, "line0", "198.18.93.1/24", l.board, "eth0", "")
	f := stationtest.New(t)
	f.Bundle(t, "os.lfb", "1.0", []string{"qemu-x86_64"}, nil)
	tftp := filepath.Join(f.Dir, "tftp")
	os.MkdirAll(tftp, 0o755)
	os.WriteFile(filepath.Join(tftp, "undionly.kpxe"), bytes.Repeat([]byte("iPXE"), 20000), 0o644)
	os.WriteFile(filepath.Join(tftp, "boot.ipxe"), []byte("#!ipxe\nkernel http://198.18.93.1:8080/boot/vmlinuz\nboot\n"), 0o644)
	l.cfg = f.Config(t, stationtest.Options{Bundles: []string{"os.lfb"}, Listen: ":8080", NoCA: true, Extra: `interface: line0
dhcp: {range: 198.18.93.100-198.18.93.150, probe: 1s}
boot: {tftp_root: tftp, bios: undionly.kpxe, ipxe_script: boot.ipxe}
`})
	return l, f
}

// exit is a process's end: done is closed when it has exited, then err
// holds how.
type exit struct {
	done chan struct{}
	err  error
}

// run starts the station process in the station namespace.
func (l *netLine) run(t *testing.T) (*exec.Cmd, *syncBuffer, *exit) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := netnstest.Exec(l.station, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+l.cfg)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e := &exit{done: make(chan struct{})}
	go func() { e.err = cmd.Wait(); close(e.done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-e.done
	})
	return cmd, out, e
}

// syncBuffer is a bytes.Buffer a process writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestNetworkBoot runs a station process on its line interface and boots
// a board's first steps against it with real clients: busybox udhcpc as a
// PXE BIOS client gets an address and iPXE's file name, curl fetches that
// file by TFTP and the iPXE script by HTTP, and the board announces itself.
func TestNetworkBoot(t *testing.T) {
	l, _ := newNetLine(t)
	_, out, done := l.run(t)
	// Ready when the station answers HTTP.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := exec.Command("ip", "netns", "exec", l.station, "curl", "-sf", "-o", "/dev/null", "http://198.18.93.1:8080/line.json").Run(); err == nil {
			break
		}
		select {
		case <-done.done:
			t.Fatalf("station exited: %v\n%s", done.err, out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("station not ready:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	env := filepath.Join(dir, "env")
	os.WriteFile(script, []byte("#!/bin/sh\n[ \"$1\" = bound ] && { env > "+env+"; ip addr add $ip/$mask dev $interface; }\nexit 0\n"), 0o755)
	if b, err := netnstest.Exec(l.board, "busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "5", "-T", "1", "-s", script,
		"-V", "PXEClient:Arch:00000:UNDI:002001").CombinedOutput(); err != nil {
		t.Fatalf("udhcpc: %v\n%s\nstation:\n%s", err, b, out)
	}
	b, _ := os.ReadFile(env)
	vars := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, "=")
		vars[k] = v
	}
	if vars["ip"] != "198.18.93.100" || vars["boot_file"] != "undionly.kpxe" || vars["siaddr"] != "198.18.93.1" {
		t.Fatalf("lease ip=%q boot_file=%q siaddr=%q; want 198.18.93.100, undionly.kpxe from 198.18.93.1", vars["ip"], vars["boot_file"], vars["siaddr"])
	}
	got, err := netnstest.Exec(l.board, "curl", "-sS", "--fail", "tftp://"+vars["siaddr"]+"/"+vars["boot_file"]).Output()
	if err != nil || !bytes.Equal(got, bytes.Repeat([]byte("iPXE"), 20000)) {
		t.Errorf("TFTP %s: %d bytes, %v", vars["boot_file"], len(got), err)
	}
	got, err = netnstest.Exec(l.board, "curl", "-sS", "--fail", "http://198.18.93.1:8080/boot.ipxe").Output()
	if err != nil || !strings.HasPrefix(string(got), "#!ipxe") {
		t.Errorf("GET boot.ipxe: %q, %v", got, err)
	}
	ann, _ := json.Marshal(protocol.Announce{Protocol: 1, Board: "qemu-x86_64", Hardware: board(1)})
	got, err = netnstest.Exec(l.board, "curl", "-sS", "--fail", "-d", string(ann), "http://198.18.93.1:8080"+protocol.PathAnnounce).Output()
	var reply protocol.AnnounceReply
	if err != nil || json.Unmarshal(got, &reply) != nil || reply.Run != 1 || reply.Bundle.URL != "http://198.18.93.1:8080/bundles/os.lfb" {
		t.Errorf("announce from the board: %s, %v", got, err)
	}
	t.Logf("station:\n%s", out)
}

// TestOtherDHCPServer: another DHCP server answers on the line's
// interface; the station refuses to start and says why in one line.
func TestOtherDHCPServer(t *testing.T) {
	l, _ := newNetLine(t)
	netnstest.Run(t, "ip", "-n", l.board, "addr", "add", "198.18.93.254/24", "dev", "eth0")
	var conn net.PacketConn
	netnstest.In(t, l.board, func() (err error) {
		conn, err = server4.NewIPv4UDPConn("eth0", &net.UDPAddr{Port: dhcpv4.ServerPort})
		return err
	})
	office := net.IPv4(198, 18, 93, 254)
	rogue, err := server4.NewServer("eth0", nil, func(c net.PacketConn, _ net.Addr, m *dhcpv4.DHCPv4) {
		if m.MessageType() == dhcpv4.MessageTypeDiscover {
			r, _ := dhcpv4.NewReplyFromRequest(m, dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer),
				dhcpv4.WithYourIP(net.IPv4(198, 18, 93, 20)), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(office)))
			c.WriteTo(r.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort})
		}
	}, server4.WithConn(conn))
	if err != nil {
		t.Fatal(err)
	}
	go rogue.Serve()
	defer rogue.Close()
	_, out, done := l.run(t)
	select {
	case <-done.done:
		err := done.err
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if err == nil || len(lines) != 1 || !strings.Contains(lines[0], "another DHCP server answers on this interface: 198.18.93.254 offered") ||
			!strings.Contains(lines[0], "refusing to serve DHCP there") {
			t.Errorf("station exit %v, output:\n%s", err, out)
		}
		t.Logf("station said: %s", lines[0])
	case <-time.After(60 * time.Second):
		t.Fatalf("the station still runs next to another DHCP server:\n%s", out)
	}
}
