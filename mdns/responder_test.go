package mdns

import (
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

func testResponder() *Responder {
	return &Responder{
		name: "board-sn1.local", ttl: 120, lastMulti: map[int]time.Time{},
		ifaces: map[int]Interface{
			2: {Index: 2, Name: "eth0", Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.7.1/24"), netip.MustParsePrefix("fe80::1/64")}},
			3: {Index: 3, Name: "eth1", Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.2.15/24")}},
		},
	}
}

// TestAnswer: what the responder sends for each kind of query, and where.
func TestAnswer(t *testing.T) {
	onLink := netip.MustParseAddrPort("198.18.7.9:5353")
	legacy := netip.MustParseAddrPort("198.18.7.9:40000")
	A := func(name string) []byte { return buildQuery(t, 9, q(name, dnsmessage.TypeA, dnsmessage.ClassINET)) }
	tests := []struct {
		name    string
		pkt     []byte
		src     netip.AddrPort
		ifIndex int
		dst     netip.AddrPort // zero: no answer
		addrs   []string
		id      uint16
		ttl     uint32
	}{
		{"A, multicast", A("board-sn1.local."), onLink, 2, Group, []string{"198.18.7.1"}, 0, 120},
		{"A, any case", A("Board-SN1.Local."), onLink, 2, Group, []string{"198.18.7.1"}, 0, 120},
		{"AAAA", buildQuery(t, 9, q("board-sn1.local.", dnsmessage.TypeAAAA, dnsmessage.ClassINET)), onLink, 2, Group, []string{"fe80::1"}, 0, 120},
		{"ANY", buildQuery(t, 9, q("board-sn1.local.", dnsmessage.TypeALL, dnsmessage.ClassINET)), onLink, 2, Group, []string{"198.18.7.1", "fe80::1"}, 0, 120},
		{"QU: unicast", buildQuery(t, 9, q("board-sn1.local.", dnsmessage.TypeA, dnsmessage.ClassINET|0x8000)), onLink, 2, onLink, []string{"198.18.7.1"}, 0, 120},
		{"legacy resolver", A("board-sn1.local."), legacy, 2, legacy, []string{"198.18.7.1"}, 9, 10},
		{"the other interface's address", A("board-sn1.local."), netip.MustParseAddrPort("10.0.2.2:5353"), 3, Group, []string{"10.0.2.15"}, 0, 120},
		{"link-local querier", A("board-sn1.local."), netip.MustParseAddrPort("169.254.3.4:5353"), 3, Group, []string{"10.0.2.15"}, 0, 120},
		{"another name", A("other.local."), onLink, 2, netip.AddrPort{}, nil, 0, 0},
		{"another type", buildQuery(t, 9, q("board-sn1.local.", dnsmessage.TypeTXT, dnsmessage.ClassINET)), onLink, 2, netip.AddrPort{}, nil, 0, 0},
		{"AAAA where there is none", buildQuery(t, 9, q("board-sn1.local.", dnsmessage.TypeAAAA, dnsmessage.ClassINET)), netip.MustParseAddrPort("10.0.2.2:5353"), 3, netip.AddrPort{}, nil, 0, 0},
		{"off the link", A("board-sn1.local."), netip.MustParseAddrPort("203.0.113.5:5353"), 2, netip.AddrPort{}, nil, 0, 0},
		{"unknown interface", A("board-sn1.local."), onLink, 7, netip.AddrPort{}, nil, 0, 0},
		{"garbage", []byte("hello"), onLink, 2, netip.AddrPort{}, nil, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := testResponder()
			reply, dst, ok := r.answer(tt.pkt, tt.src, tt.ifIndex, time.Unix(1e9, 0))
			if !tt.dst.IsValid() {
				if ok {
					t.Fatalf("answer sent to %v, want none", dst)
				}
				return
			}
			if !ok || dst != tt.dst {
				t.Fatalf("answer to %v (%v), want to %v", dst, ok, tt.dst)
			}
			var p dnsmessage.Parser
			h, err := p.Start(reply)
			if err != nil {
				t.Fatal(err)
			}
			if h.ID != tt.id {
				t.Errorf("id %d, want %d", h.ID, tt.id)
			}
			p.SkipAllQuestions()
			as, err := p.AllAnswers()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range as {
				if a.Header.TTL != tt.ttl {
					t.Errorf("TTL %d, want %d", a.Header.TTL, tt.ttl)
				}
				switch b := a.Body.(type) {
				case *dnsmessage.AResource:
					got = append(got, netip.AddrFrom4(b.A).String())
				case *dnsmessage.AAAAResource:
					got = append(got, netip.AddrFrom16(b.AAAA).String())
				}
			}
			if len(got) != len(tt.addrs) {
				t.Fatalf("answers %v, want %v", got, tt.addrs)
			}
			for i := range got {
				if got[i] != tt.addrs[i] {
					t.Errorf("answers %v, want %v", got, tt.addrs)
				}
			}
		})
	}
}

// TestAnswerRate: a record is multicast at most once a second on an
// interface; unicast answers are not limited.
func TestAnswerRate(t *testing.T) {
	r := testResponder()
	pkt := buildQuery(t, 0, q("board-sn1.local.", dnsmessage.TypeA, dnsmessage.ClassINET))
	src := netip.MustParseAddrPort("198.18.7.9:5353")
	now := time.Unix(1e9, 0)
	for i, tt := range []struct {
		at   time.Duration
		src  netip.AddrPort
		want bool
	}{
		{0, src, true},
		{500 * time.Millisecond, src, false},
		{600 * time.Millisecond, netip.MustParseAddrPort("198.18.7.9:40000"), true}, // legacy: unicast
		{time.Second, src, true},
	} {
		if _, _, ok := r.answer(pkt, tt.src, 2, now.Add(tt.at)); ok != tt.want {
			t.Errorf("query %d at %v: answered %v, want %v", i, tt.at, ok, tt.want)
		}
	}
}
