package mdns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"

	"github.com/lifeboat-updater/lifeboat/internal/netnstest"
)

// These tests run the responder on a real link: a veth pair between two
// network namespaces the test makes, the responder in one, a querier in
// the other. 198.18.0.0/15 is reserved for benchmarking and lives only
// inside these namespaces; the multicast group is link-local.

const (
	devAddr   = "198.18.99.1"
	querierIP = "198.18.99.2"
	testName  = "test-board-sn0042.local"
)

type link struct {
	dev, querier string // namespaces
	ifIndex      int    // the querier's interface
}

func newLink(t *testing.T) *link {
	netnstest.Need(t)
	l := &link{dev: netnstest.New(t, "lbm-dev"), querier: netnstest.New(t, "lbm-q")}
	netnstest.Link(t, l.dev, "eth0", devAddr+"/24", l.querier, "eth0", querierIP+"/24")
	netnstest.In(t, l.querier, func() error {
		i, err := net.InterfaceByName("eth0")
		if err == nil {
			l.ifIndex = i.Index
		}
		return err
	})
	return l
}

// socket opens a UDP socket in the querier's namespace at addr, sending
// multicast out of its link and, if join, in the mDNS group.
func (l *link) socket(t *testing.T, addr string, join bool) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	netnstest.In(t, l.querier, func() error {
		lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
				if serr == nil {
					serr = unix.SetsockoptIPMreqn(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(l.ifIndex)})
				}
				if serr == nil && join {
					serr = unix.SetsockoptIPMreqn(int(fd), unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, &unix.IPMreqn{Multiaddr: Group.Addr().As4(), Ifindex: int32(l.ifIndex)})
				}
			})
			if err != nil {
				return err
			}
			return serr
		}}
		pc, err := lc.ListenPacket(context.Background(), "udp4", addr)
		if err != nil {
			return err
		}
		c = pc.(*net.UDPConn)
		return nil
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// answer is a response as the querier sees it.
type answer struct {
	from  netip.AddrPort
	id    uint16
	qs    []dnsmessage.Question
	addrs []string
	ttl   uint32
	class dnsmessage.Class
}

// read waits for the next DNS response on c.
func read(t *testing.T, c *net.UDPConn, within time.Duration) (answer, bool) {
	t.Helper()
	buf := make([]byte, 9000)
	deadline := time.Now().Add(within)
	for {
		c.SetReadDeadline(deadline)
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return answer{}, false
		}
		if err != nil {
			t.Fatal(err)
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil {
			t.Fatalf("a message that does not parse from %v: %v", from, err)
		}
		if !h.Response {
			continue // our own queries, looped back
		}
		a := answer{from: from, id: h.ID}
		if a.qs, err = p.AllQuestions(); err != nil {
			t.Fatal(err)
		}
		rs, err := p.AllAnswers()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Header.Name.String() != testName+"." {
				t.Errorf("answer for %s", r.Header.Name)
			}
			a.ttl, a.class = r.Header.TTL, r.Header.Class
			if b, ok := r.Body.(*dnsmessage.AResource); ok {
				a.addrs = append(a.addrs, netip.AddrFrom4(b.A).String())
			}
		}
		return a, true
	}
}

func send(t *testing.T, c *net.UDPConn, pkt []byte) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort(pkt, Group); err != nil {
		t.Fatal(err)
	}
}

func TestRespondInNamespace(t *testing.T) {
	l := newLink(t)
	// The querier's mDNS socket, there before the responder starts, so
	// that it hears the announcements.
	mdnsSock := l.socket(t, "0.0.0.0:5353", true)
	legacy := l.socket(t, querierIP+":0", false)

	var r *Responder
	netnstest.In(t, l.dev, func() (err error) {
		r, err = Start(context.Background(), Config{Name: "Test-Board-SN0042", Logf: t.Logf})
		return err
	})
	defer r.Close()
	if r.Name() != testName {
		t.Errorf("Name() = %q, want %q", r.Name(), testName)
	}

	// Two announcements, unasked.
	for i := 1; i <= 2; i++ {
		a, ok := read(t, mdnsSock, 10*time.Second)
		if !ok {
			t.Fatalf("announcement %d never came", i)
		}
		if a.from.String() != devAddr+":5353" || len(a.addrs) != 1 || a.addrs[0] != devAddr || a.ttl != 120 || a.class != dnsmessage.ClassINET|0x8000 || len(a.qs) != 0 {
			t.Errorf("announcement %d: %+v, want %s, TTL 120, cache flush, from %s:5353", i, a, devAddr, devAddr)
		}
	}

	// A legacy resolver asks from its own port: the answer comes to that
	// port, with its id and question. A query for another name gets no
	// answer: the first answer is for the second query.
	send(t, legacy, buildQuery(t, 1, q("other-board.local.", dnsmessage.TypeA, dnsmessage.ClassINET)))
	send(t, legacy, buildQuery(t, 2, q("TEST-board-sn0042.local.", dnsmessage.TypeA, dnsmessage.ClassINET)))
	a, ok := read(t, legacy, 10*time.Second)
	if !ok {
		t.Fatal("no answer to a legacy query")
	}
	if a.id != 2 || len(a.qs) != 1 || a.qs[0].Name.String() != "TEST-board-sn0042.local." || len(a.addrs) != 1 || a.addrs[0] != devAddr || a.ttl != 10 || a.class != dnsmessage.ClassINET {
		t.Errorf("legacy answer %+v, want id 2, the question, %s with TTL 10", a, devAddr)
	}

	// A QU question from port 5353: a unicast answer.
	send(t, mdnsSock, buildQuery(t, 0, q(testName+".", dnsmessage.TypeA, dnsmessage.ClassINET|0x8000)))
	a, ok = read(t, mdnsSock, 10*time.Second)
	if !ok || a.addrs == nil || a.addrs[0] != devAddr {
		t.Fatalf("answer to a QU question: %+v, %v", a, ok)
	}

	// A plain mDNS query: a multicast answer. The responder multicasts
	// a record at most once a second, so the querier asks again, as
	// queriers do, until it is answered.
	for try := 0; ; try++ {
		if try == 20 {
			t.Fatal("no answer to a multicast query in 20 tries")
		}
		send(t, mdnsSock, buildQuery(t, 0, q(testName+".", dnsmessage.TypeA, dnsmessage.ClassINET)))
		if a, ok = read(t, mdnsSock, 1500*time.Millisecond); ok {
			break
		}
	}
	if a.addrs[0] != devAddr || a.ttl != 120 {
		t.Errorf("multicast answer %+v", a)
	}

	// Goodbye: the records again, with TTL 0.
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	// (An answer to a repeated query may come first.)
	for {
		a, ok = read(t, mdnsSock, 10*time.Second)
		if !ok || a.ttl == 0 {
			break
		}
	}
	if !ok || a.ttl != 0 || len(a.addrs) != 1 {
		t.Errorf("goodbye %+v, %v; want the record with TTL 0", a, ok)
	}
}

// zeroconfResolve asks for a name's A record with python-zeroconf (Debian
// package python3-zeroconf), an mDNS implementation of its own: a query
// every second until its cache holds an answer, then prints the
// addresses and their TTLs.
const zeroconfResolve = `
import socket, sys, time
from zeroconf import Zeroconf, IPVersion, DNSOutgoing, DNSQuestion, const
name, iface = sys.argv[1], sys.argv[2]
zc = Zeroconf(interfaces=[iface], ip_version=IPVersion.V4Only)
try:
    for _ in range(20):
        out = DNSOutgoing(const._FLAGS_QR_QUERY)
        out.add_question(DNSQuestion(name, const._TYPE_A, const._CLASS_IN))
        zc.send(out)
        time.sleep(1)
        recs = zc.cache.get_all_by_details(name, const._TYPE_A, const._CLASS_IN)
        if recs:
            for r in recs:
                print(socket.inet_ntoa(r.address), r.ttl)
            sys.exit(0)
    print("no answer")
    sys.exit(1)
finally:
    zc.close()
`

// TestZeroconfResolves: another mDNS implementation finds the name.
func TestZeroconfResolves(t *testing.T) {
	l := newLink(t)
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import zeroconf").Run(); err != nil {
		t.Fatalf("%s cannot import zeroconf (Debian package python3-zeroconf; scripts/install-deps.sh installs it): %v", python, err)
	}
	// python-zeroconf sends to the group through the routing table.
	netnstest.Run(t, "ip", "-n", l.querier, "route", "add", "224.0.0.0/4", "dev", "eth0")
	var r *Responder
	netnstest.In(t, l.dev, func() (err error) {
		r, err = Start(context.Background(), Config{Name: testName})
		return err
	})
	defer r.Close()
	out, err := exec.Command("ip", "netns", "exec", l.querier, python, "-c", zeroconfResolve, testName+".", querierIP).CombinedOutput()
	if err != nil {
		t.Fatalf("python-zeroconf: %v\n%s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), devAddr+" 120"; got != want {
		t.Errorf("python-zeroconf resolved %s to %q, want %q", testName, got, want)
	}
}
