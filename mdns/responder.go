// Package mdns answers Multicast DNS queries (RFC 6762) for one host name,
// so that a person on the board's network finds the rescue's page at
// http://<board>-<serial>.local/ without knowing its address.
//
// It does only what that needs, over IPv4: it joins 224.0.0.251:5353 on
// the board's interfaces, announces the name's addresses when it starts
// (twice, a second apart) and says goodbye when it stops (TTL 0); it
// answers A, AAAA and ANY questions for the name with the addresses of the
// interface the query came in on: multicast to the group (at most once a
// second per interface), unicast to queriers that ask for it (the QU bit)
// and to legacy resolvers that send from a port other than 5353 (with the
// question echoed and a TTL of 10 s). Queries from outside the link are
// ignored (RFC 6762 section 11), so the responder cannot be used to
// reflect traffic. It does not probe for the name before using it (the
// serial number in it makes it unique), does no known-answer suppression
// and offers no services (DNS-SD).
package mdns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Group is the mDNS IPv4 group and port.
var Group = netip.AddrPortFrom(netip.AddrFrom4([4]byte{224, 0, 0, 251}), 5353)

// Config says what to answer, and where.
type Config struct {
	// Name is the host name, with or without ".local" (HostName makes
	// one).
	Name string
	// Interfaces are where to answer, with the addresses to give there.
	// nil means every interface that is up, can multicast and has an
	// IPv4 address, with its addresses, as they are when Start runs.
	Interfaces []Interface
	// TTL of the answers; 0 means 120 s (RFC 6762 10).
	TTL time.Duration
	// Logf reports what the responder could not do (an interface it
	// could not join); nil for nothing.
	Logf func(format string, args ...any)
}

// Interface is a network interface to answer on.
type Interface struct {
	Index int
	Name  string
	// Addrs are the interface's addresses with their prefix lengths:
	// the answers' addresses (A for IPv4, AAAA for IPv6), and the link
	// that queries must come from.
	Addrs []netip.Prefix
}

// Responder answers queries for its name until Close.
type Responder struct {
	name   string // lower case, with .local
	ttl    uint32
	ifaces map[int]Interface
	conn   packetConn
	logf   func(string, ...any)
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	lastMulti map[int]time.Time // last multicast answer per interface
	closed    bool
}

// packetConn is the responder's socket: joined to the group on each
// interface, telling which interface a packet came in on and sending out
// of a given one.
type packetConn interface {
	ReadFrom(b []byte) (n int, src netip.AddrPort, ifIndex int, err error)
	WriteTo(b []byte, dst netip.AddrPort, ifIndex int) error
	Close() error
}

// Start joins the group and starts answering and announcing. It fails when
// no interface can be joined.
func Start(ctx context.Context, cfg Config) (*Responder, error) {
	name := strings.ToLower(strings.TrimSuffix(cfg.Name, "."))
	if !strings.HasSuffix(name, ".local") {
		name += ".local"
	}
	if !validName(name) {
		return nil, fmt.Errorf("mdns: bad host name %q", cfg.Name)
	}
	ifs := cfg.Interfaces
	if ifs == nil {
		var err error
		if ifs, err = systemInterfaces(); err != nil {
			return nil, err
		}
	}
	ttl := cfg.TTL
	if ttl <= 0 {
		ttl = 120 * time.Second
	}
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	conn, joined, err := listen(ifs, logf)
	if err != nil {
		return nil, err
	}
	r := &Responder{
		name: name, ttl: uint32(ttl / time.Second), ifaces: map[int]Interface{}, conn: conn, logf: logf,
		done: make(chan struct{}), lastMulti: map[int]time.Time{},
	}
	for _, i := range joined {
		r.ifaces[i.Index] = i
	}
	ctx, r.cancel = context.WithCancel(ctx)
	go r.serve()
	go r.announce(ctx)
	return r, nil
}

// Name is the name answered, with ".local".
func (r *Responder) Name() string { return r.name }

// Close says goodbye (the name's records with TTL 0, so caches drop
// them) and stops.
func (r *Responder) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	for _, i := range r.ifaces {
		r.conn.WriteTo(appendResponse(nil, response{name: r.name, addrs: addrsOf(i), ttl: 0, flush: true}), Group, i.Index)
	}
	err := r.conn.Close()
	<-r.done
	return err
}

// announce sends the name's records unasked, twice, a second apart (RFC
// 6762 8.3).
func (r *Responder) announce(ctx context.Context) {
	for n := 0; n < 2; n++ {
		if n > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
		for _, i := range r.ifaces {
			r.mu.Lock()
			r.lastMulti[i.Index] = time.Now()
			r.mu.Unlock()
			if err := r.conn.WriteTo(appendResponse(nil, response{name: r.name, addrs: addrsOf(i), ttl: r.ttl, flush: true}), Group, i.Index); err != nil {
				r.logf("mdns: announcing on %s: %v", i.Name, err)
			}
		}
	}
}

func (r *Responder) serve() {
	defer close(r.done)
	buf := make([]byte, 9000) // RFC 6762 17: up to the interface's MTU
	for {
		n, src, ifIndex, err := r.conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			r.logf("mdns: %v", err)
			continue
		}
		reply, dst, ok := r.answer(buf[:n], src, ifIndex, time.Now())
		if !ok {
			continue
		}
		if err := r.conn.WriteTo(reply, dst, ifIndex); err != nil {
			r.logf("mdns: answering %v: %v", src, err)
		}
	}
}

// answer decides what to send for the packet pkt from src on interface
// ifIndex, and where.
func (r *Responder) answer(pkt []byte, src netip.AddrPort, ifIndex int, now time.Time) ([]byte, netip.AddrPort, bool) {
	var none netip.AddrPort
	i, ok := r.ifaces[ifIndex]
	if !ok || !onLink(i, src.Addr()) {
		return nil, none, false
	}
	q, ok, err := parseQuery(pkt)
	if err != nil || !ok {
		return nil, none, false
	}
	var asked *question
	want := map[bool]bool{} // by Is4: the families asked for
	unicast := false
	for k := range q.questions {
		qu := &q.questions[k]
		if !strings.EqualFold(qu.name, r.name) || (qu.class != classIN && qu.class != classANY) {
			continue
		}
		switch qu.qtype {
		case typeA:
			want[true] = true
		case typeAAAA:
			want[false] = true
		case typeANY:
			want[true], want[false] = true, true
		default:
			continue
		}
		if asked == nil {
			asked = qu
		}
		unicast = unicast || qu.unicast
	}
	var addrs []netip.Addr
	for _, a := range addrsOf(i) {
		if want[a.Is4()] {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return nil, none, false
	}
	if src.Port() != Group.Port() {
		// A legacy resolver (RFC 6762 6.7): a plain DNS answer to its
		// port, with its id and question, a short TTL and no cache
		// flush bit.
		return appendResponse(nil, response{id: q.id, question: asked, name: r.name, addrs: addrs, ttl: min(r.ttl, 10)}), src, true
	}
	res := appendResponse(nil, response{name: r.name, addrs: addrs, ttl: r.ttl, flush: true})
	if unicast {
		return res, src, true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.lastMulti[ifIndex]) < time.Second {
		return nil, none, false // RFC 6762 6: a record at most once a second per interface
	}
	r.lastMulti[ifIndex] = now
	return res, Group, true
}

// addrsOf is the interface's addresses, without prefix lengths or zones.
func addrsOf(i Interface) []netip.Addr {
	var out []netip.Addr
	for _, p := range i.Addrs {
		out = append(out, p.Addr().WithZone(""))
	}
	return out
}

// linkLocal4 is IPv4's link-local block (RFC 3927).
var linkLocal4 = netip.MustParsePrefix("169.254.0.0/16")

// onLink reports whether a is on the interface's link: in one of its
// prefixes, or link-local.
func onLink(i Interface, a netip.Addr) bool {
	a = a.Unmap()
	if linkLocal4.Contains(a) || a.IsLinkLocalUnicast() {
		return true
	}
	for _, p := range i.Addrs {
		if p.Masked().Contains(a) {
			return true
		}
	}
	return false
}

// systemInterfaces lists the interfaces that are up, can multicast and
// have an IPv4 address.
func systemInterfaces() ([]Interface, error) {
	nis, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("mdns: %w", err)
	}
	var out []Interface
	for _, ni := range nis {
		if ni.Flags&net.FlagUp == 0 || ni.Flags&net.FlagMulticast == 0 || ni.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ni.Addrs()
		if err != nil {
			continue
		}
		i := Interface{Index: ni.Index, Name: ni.Name}
		has4 := false
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ones, _ := ipn.Mask.Size()
			i.Addrs = append(i.Addrs, netip.PrefixFrom(ip.Unmap(), ones))
			has4 = has4 || ip.Unmap().Is4()
		}
		if has4 {
			out = append(out, i)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("mdns: no interface is up with an IPv4 address")
	}
	return out, nil
}
